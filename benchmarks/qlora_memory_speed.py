"""QLoRA vs LoRA on one base: weight memory, peak memory and training speed, alternated run by run.

Run by hand, never by the tests:
    OMP_NUM_THREADS=1 python benchmarks/qlora_memory_speed.py --model DIR [--pairs 3] [--steps 40]
(DIR: e.g. the world quick base, ``mmtune pretrain --preset quick`` prints where it is cached.)

Each run is a fresh subprocess (so the CPU's peak RSS is per run): load the base in full precision
(LoRA), in 4-bit NF4 with double quantization (QLoRA) or in 8 bits, tune ``lora(r=16)`` on the
world's iconqa training set for ``--steps`` steps, and report the base's weight bytes
(``get_memory_footprint``), the process's peak memory (CUDA peak on a GPU, RSS on CPU), the training
seconds and the last loss. The variants alternate (lora, qlora4, qlora8, lora, ...) so a machine
shared with other jobs slows them alike. Prints one JSON line per run, then the medians per variant.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

VARIANTS = {"lora": None, "qlora4": {"bits": 4, "type": "nf4", "double_quant": True}, "qlora8": {"bits": 8}}
STRATEGY = "lora(r=16, alpha=32, groups=llm)"


def one_run(model: str, variant: str, steps: int) -> dict:
    """Train once in this process and measure it."""
    from mmtune.models.loading import load_model
    from mmtune.models.quantization import QuantizationConfig
    from mmtune.recipes.sft import TrainingConfig, train_sft
    from mmtune.world.tasks import get_world_task

    settings = VARIANTS[variant]
    loaded = load_model(model, quantization=QuantizationConfig(**settings) if settings else None)
    weights_mb = loaded.model.get_memory_footprint() / 2**20
    samples = get_world_task("iconqa").samples("train", 4 * steps, seed=0)
    with tempfile.TemporaryDirectory() as out:
        result = train_sft(loaded.model, loaded.processor, samples, strategy=STRATEGY, output_dir=out,
                           training=TrainingConfig(lr=1e-3, max_steps=steps, batch_size=4, save_steps=0,
                                                   logging_steps=steps, report_to=[]))
    return {"variant": variant, "weights_mb": round(weights_mb, 3), "peak_memory_mb": round(result.peak_memory_mb, 1),
            "train_seconds": round(result.train_seconds, 2), "steps_per_second": round(steps / result.train_seconds, 2),
            "last_loss": round(result.losses[-1], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: the child process's variant
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.model, args.one, args.steps)))
        return
    runs = []
    for _ in range(args.pairs):
        for variant in args.variants.split(","):
            done = subprocess.run([sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                                   "--one", variant], capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    for variant in args.variants.split(","):
        mine = [r for r in runs if r["variant"] == variant]
        medians = {k: statistics.median(r[k] for r in mine) for k in ("weights_mb", "peak_memory_mb", "train_seconds",
                                                                        "steps_per_second")}
        print(json.dumps({"variant": variant, "runs": len(mine), "median": medians}))


if __name__ == "__main__":
    main()
