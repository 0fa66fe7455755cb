"""Batched vs batch-1 greedy generation throughput of the eval runner, measured like the SFT comparison.

``python benchmarks/generation_throughput.py [--n 64] [--rounds 6] [--threads 1] [--out FILE]``. Both
settings go through ``mmtune.eval.runner.evaluate`` (left padding, length-sorted batches, no cache) on
the same samples with the same model in one process; they run alternately (AB, BA, AB, ...) for
``--rounds`` rounds after one warm-up each, and the report is the median samples/s of each (min-max),
the median per-round ratio with its range, and whether the two wrote the same answer for every
sample (batching must change the speed, never an answer). What batching buys; target >= 4x.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from sft_throughput import spread  # this folder: the SFT comparison's median (min-max)

from mmtune.eval import GenerationSettings, get_task
from mmtune.eval.runner import evaluate
from mmtune.files import read_jsonl
from mmtune.world.model import build_base_model
from mmtune.world.tokenizer import world_processor


def timed_answers(model, processor, task, batch_size: int) -> tuple[float, dict[str, str]]:
    """(samples/s, sample id -> the answer generated) for one uncached evaluation of ``task``."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        evaluate(model, processor, [task], batch_size=batch_size, progress=False, out_dir=out)
        seconds = time.perf_counter() - start
        answers = {r["id"]: r["raw"] for r in read_jsonl(Path(out) / f"{task.name}.samples.jsonl")}
    return len(task.samples) / seconds, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="samples of world_vqa to answer")
    parser.add_argument("--preset", default="tiny", help="world model preset (mmtune.world.model.PRESETS)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, help="write the settings, every round and the summary as JSON here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, processor = build_base_model(args.preset).eval(), world_processor()
    task = get_task("world_vqa", n=args.n)
    task.generation = GenerationSettings(max_new_tokens=args.max_new_tokens)
    sizes = {"batched": args.batch_size, "single": 1}
    for size in sizes.values():  # warm-up: first-call allocations and lazy imports
        timed_answers(model, processor, get_task("world_vqa", n=4), size)
    rate: dict[str, list[float]] = {name: [] for name in sizes}
    same_answers = True
    for r in range(args.rounds):
        order = list(sizes) if r % 2 == 0 else list(reversed(sizes))
        answers = {}
        for name in order:
            speed, answers[name] = timed_answers(model, processor, task, sizes[name])
            rate[name].append(speed)
            print(f"round {r} batch {sizes[name]:>3}: {speed:8.2f} samples/s", flush=True)
        same_answers &= answers["batched"] == answers["single"]
    ratios = [b / s for b, s in zip(rate["batched"], rate["single"])]
    summary = {"batched": spread(rate["batched"]), "single": spread(rate["single"]), "ratio": spread(ratios),
               "same_answers": same_answers}
    print(f"world model {args.preset!r}, {args.n} samples, {args.max_new_tokens} new tokens, {args.threads} "
          f"thread(s), {args.rounds} alternating rounds")
    for name, size in sizes.items():
        s = summary[name]
        print(f"batch {size:>3}: {s['median']:8.2f} samples/s ({s['min']:.2f}-{s['max']:.2f})")
    print(f"speed-up: {summary['ratio']['median']:.2f}x ({summary['ratio']['min']:.2f}-{summary['ratio']['max']:.2f}); "
          f"same answers for every sample: {same_answers}")
    if args.out:
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rates": rate,
                                        "ratios": ratios, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
