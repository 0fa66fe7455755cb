"""Does a world base hallucinate? CHAIR on world_describe, POPE F1 per negative sampling, and the
seen sets, for the default base and the co-occurrence variant side by side (README, issue 16).

    MMTUNE_HOME=... python benchmarks/world_experiments/hallucination.py [--presets quick,quick-cooc]

Each base is pre-trained first if it is not cached. The describe and POPE sets are drawn twice:
from the default world (kinds independent) and from the "cooc" world (its co-occurring pairs;
POPE's adversarial negative is then an absent companion). References are exact in both.
Prints a markdown table, one column per base; answers are cached under ``<base>/eval_hallucination``.
"""
from __future__ import annotations

import argparse

import torch

SEEN = ["caption", "vqa", "gqa", "ocr", "mme", "pope"]


def tasks(n: int, seen_n: int) -> list:
    from mmtune.eval.task import get_task

    out = []
    for variant in ("independent", "cooc"):
        out.append(get_task("world_describe", n=n, variant=variant))
        out += [get_task("world_pope", n=n, variant=variant, pope_split=s) for s in ("random", "adversarial")]
    return out + [get_task(f"world_{name}", n=seen_n) for name in SEEN]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="quick,quick-cooc", help="pretraining presets, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=200, help="test samples per describe / POPE split set")
    ap.add_argument("--seen-n", type=int, default=100, help="test samples per seen set (the bench's size)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mmtune.eval.runner import evaluate
    from mmtune.models import load_model
    from mmtune.recipes.pretrain import ensure_base_model

    presets = args.presets.split(",")
    columns = {}
    for preset in presets:
        path = ensure_base_model(preset, args.seed)
        loaded = load_model(path)
        columns[preset] = evaluate(loaded.model, loaded.processor, tasks(args.n, args.seen_n), batch_size=50,
                                   out_dir=path / "eval_hallucination", progress=False)
    print("| set | metric | " + " | ".join(presets) + " |")
    print("|---|---|" + "---:|" * len(presets))
    for name, first in columns[presets[0]].items():
        metrics = ["chair_i", "chair_s", "hallucinated_per_response"] if first["metric"] == "chair_i" else [first["metric"]]
        for metric in metrics:
            cells = " | ".join(f"{columns[p][name]['scores'][metric]:.2f}" for p in presets)
            print(f"| {name} | {metric} | {cells} |")


if __name__ == "__main__":
    main()
