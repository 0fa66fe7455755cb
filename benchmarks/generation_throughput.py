"""Batched (16) vs batch-1 greedy generation throughput of the eval runner, on the world model.

Run by hand: ``python benchmarks/generation_throughput.py [--n 64] [--preset tiny]``. Both runs
go through ``mmtune.eval.runner.evaluate`` (left padding, length-sorted batches, no cache) on
the same samples; the ratio is what batching buys (target >= 4x on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import time

import torch

from mmtune.eval import GenerationSettings, get_task
from mmtune.eval.runner import evaluate
from mmtune.world.model import build_base_model
from mmtune.world.tokenizer import world_processor


def samples_per_second(model, processor, task, batch_size: int) -> float:
    start = time.perf_counter()
    evaluate(model, processor, [task], batch_size=batch_size, progress=False)
    return len(task.samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="samples of world_vqa to answer")
    parser.add_argument("--preset", default="tiny", help="world model preset (mmtune.world.model.PRESETS)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, processor = build_base_model(args.preset).eval(), world_processor()
    task = get_task("world_vqa", n=args.n)
    task.generation = GenerationSettings(max_new_tokens=args.max_new_tokens)
    samples_per_second(model, processor, get_task("world_vqa", n=4), 4)  # warm-up
    batched = samples_per_second(model, processor, task, args.batch_size)
    single = samples_per_second(model, processor, task, 1)
    print(f"world model {args.preset!r}, {args.n} samples, {args.max_new_tokens} new tokens, {args.threads} threads")
    print(f"batch {args.batch_size:>3}: {batched:8.2f} samples/s")
    print(f"batch   1: {single:8.2f} samples/s")
    print(f"speed-up: {batched / single:.2f}x")


if __name__ == "__main__":
    main()
