"""SFT throughput and peak memory: mmtune's ``train_sft`` vs a plain TRL ``SFTTrainer``.

Run by hand, never by the tests:  python benchmarks/sft_throughput.py [--steps 20] [--family llava]

Both trainers tune the same tiny model (LoRA on the language model) on the same mixed-length
image+text data for the same number of steps; a third and fourth run compare the peak memory of
``full`` vs ``lora`` under mmtune. Each run is a fresh subprocess so CPU peak RSS is per run.
Prints one JSON object and a markdown line with the mmtune/TRL throughput ratio.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = "lora(r=8, alpha=16, groups=llm)"
RUNS = {  # name -> (trainer, strategy)
    "mmtune_lora": ("mmtune", LORA),
    "trl_lora": ("trl", LORA),
    "mmtune_full": ("mmtune", "full"),
}


def mixed_length_samples(n: int, seed: int = 0) -> list:
    """``n`` one-image samples whose answers range from 1 to ~40 words (padding matters)."""
    import random

    from PIL import Image

    from mmtune.data.sample import Sample, assistant_turn, user_turn

    rng = random.Random(seed)
    colors = ["red", "green", "blue", "yellow", "purple", "orange"]
    out = []
    for i in range(n):
        color = rng.choice(colors)
        answer = " ".join(rng.choice(colors) for _ in range(rng.randint(1, 40)))
        image = Image.new("RGB", (32, 32), color)
        out.append(Sample(f"b{i}", [user_turn("describe the colors"), assistant_turn(answer)], [image]))
    return out


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def run_mmtune(model_dir: Path, strategy: str, steps: int, batch_size: int, out: Path) -> dict:
    from mmtune.models import load_model
    from mmtune.recipes.sft import TrainingConfig, train_sft

    loaded = load_model(model_dir)
    samples = mixed_length_samples(steps * batch_size)
    training = TrainingConfig(lr=1e-3, max_steps=steps, batch_size=batch_size, save_steps=0,
                              logging_steps=max(steps // 4, 1), warmup_ratio=0.0)
    result = train_sft(loaded.model, loaded.processor, samples, strategy=strategy, output_dir=out, training=training)
    return {"seconds": result.train_seconds, "peak_memory_mb": result.peak_memory_mb,
            "trainable_params": result.summary.trainable_params}


def run_trl(model_dir: Path, strategy: str, steps: int, batch_size: int, out: Path) -> dict:
    """TRL's own VLM path: its collator applies the chat template and masks to assistant tokens."""
    import datasets
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from mmtune.models import load_model

    loaded = load_model(model_dir)
    rows = [{"messages": s.messages, "images": s.images} for s in mixed_length_samples(steps * batch_size)]
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch_size,
                     learning_rate=1e-3, save_strategy="no", report_to=[], logging_steps=max(steps // 4, 1),
                     max_length=None, assistant_only_loss=False, use_cpu=not torch.cuda.is_available(),
                     dataloader_pin_memory=torch.cuda.is_available())
    # Same LoRA targets as mmtune's ``groups=llm``: the decoder's linear layers.
    peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                             target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=loaded.processor, peft_config=peft_config)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"seconds": seconds, "peak_memory_mb": _peak_memory_mb(), "trainable_params": trainable}


def one_run(name: str, model_dir: Path, steps: int, batch_size: int, out: Path) -> dict:
    trainer, strategy = RUNS[name]
    fn = run_mmtune if trainer == "mmtune" else run_trl
    stats = fn(model_dir, strategy, steps, batch_size, out)
    return {"run": name, "trainer": trainer, "strategy": strategy, "steps": steps, "batch_size": batch_size,
            "samples_per_s": steps * batch_size / stats["seconds"], **stats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="llava", help="tiny model family (mmtune.models.tiny)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--one", choices=sorted(RUNS), help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one_run(args.one, args.model_dir, args.steps, args.batch_size, Path(tmp))))
        return 0

    from mmtune.models.tiny import save_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny(args.family, Path(tmp) / "model")
        results = {}
        for name in RUNS:
            cmd = [sys.executable, __file__, "--one", name, "--model-dir", str(model_dir),
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = results["mmtune_lora"]["samples_per_s"] / results["trl_lora"]["samples_per_s"]
    memory = results["mmtune_full"]["peak_memory_mb"] / results["mmtune_lora"]["peak_memory_mb"]
    print(json.dumps({"family": args.family, "runs": results, "mmtune_over_trl_throughput": ratio,
                      "full_over_lora_peak_memory": memory}, indent=2))
    print(f"| {args.family} | mmtune {results['mmtune_lora']['samples_per_s']:.1f} samples/s | "
          f"TRL {results['trl_lora']['samples_per_s']:.1f} samples/s | ratio {ratio:.2f} | "
          f"peak MB full {results['mmtune_full']['peak_memory_mb']:.0f} / lora "
          f"{results['mmtune_lora']['peak_memory_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
