"""Pre-train a quick world base with one recipe or task change, then score it: the tool behind the
README's GQA figures (seeds, no stage 1, more steps, kind shares). An experiment, not a test: it
patches ``mmtune.recipes.pretrain`` and ``mmtune.world.tasks.seen`` at run time.

    python benchmarks/world_experiments/pretrain_variant.py --out /tmp/v --seed 1
    python benchmarks/world_experiments/pretrain_variant.py --out /tmp/v --steps 4200
    python benchmarks/world_experiments/pretrain_variant.py --out /tmp/v --kinds side,side,on_side,choose,choose_shape,size

Prints one line: train seconds, each task's score on ``--n`` test samples, GQA per kind, and the
most frequent raw IconQA answers. Two runs at a time with ``--threads 1`` fit the 2-core machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

TASKS = ["vqa", "gqa", "mme", "pope", "ocr", "caption", "iconqa", "itm", "sciqa"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the base and its eval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=200, help="test samples per task")
    ap.add_argument("--steps", type=int, default=0, help="stage-2 steps (default: the preset's)")
    ap.add_argument("--align", type=int, default=0, help="stage-1 steps (default: the preset's; 1 ~ none)")
    ap.add_argument("--samples-per-task", type=int, default=0, help="unique training samples per seen task")
    ap.add_argument("--kinds", default="", help="GQA kinds drawn uniformly from this list (repeat one to weight it)")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    import mmtune.recipes.pretrain as pt
    from mmtune.world.tasks import seen

    preset = pt.PRESETS["quick"]
    for field, value in (("instruct_steps", a.steps), ("align_steps", a.align), ("samples_per_task", a.samples_per_task)):
        if value:
            preset = dataclasses.replace(preset, **{field: value})
    pt.PRESETS["quick"] = preset
    if a.kinds:
        unknown = set(a.kinds.split(",")) - set(seen.GQA_KINDS)
        if unknown:
            sys.exit(f"--kinds: unknown GQA kinds {sorted(unknown)}; use some of {seen.GQA_KINDS}")
        seen.GQA_KINDS = tuple(a.kinds.split(","))  # make_gqa draws from this tuple at call time

    out = Path(a.out)
    start = time.time()
    if not (out / "base" / "config.json").exists():
        pt.pretrain("quick", a.seed, out / "base")
    train_s = time.time() - start

    from mmtune.eval.runner import evaluate
    from mmtune.eval.task import get_task
    from mmtune.models.loading import load_model

    loaded = load_model(str(out / "base"))
    tasks = [get_task(f"world_{t}", split="test", n=a.n, seed=0) for t in TASKS]
    results = evaluate(loaded.model, loaded.processor, tasks, batch_size=50, out_dir=out / "eval", progress=False)
    gqa = {k.split("/", 1)[1]: round(v, 1) for k, v in results["world_gqa"]["scores"].items() if "/" in k}
    lines = (out / "eval" / "world_iconqa.samples.jsonl").read_text().splitlines()
    icon = Counter(json.loads(line)["raw"].strip() for line in lines)
    print(f"[{' '.join(sys.argv[1:])}] train {train_s:.0f}s",
          {k.removeprefix("world_"): round(r["score"], 1) for k, r in results.items()},
          "gqa by kind", gqa, "iconqa answers", icon.most_common(6), flush=True)


if __name__ == "__main__":
    main()
