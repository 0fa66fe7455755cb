"""A fair SFT throughput comparison: mmtune's ``train_sft`` vs TRL, LLaMA-Factory and ms-swift.

All four tune the same tiny LLaVA (saved once) on the same samples (exported once to each tool's own
dataset format, images as PNG files) with the settings in ``Settings``, printed before the runs with
what no option equalises (``NOT_EQUALISED``). LF and ms-swift get a template that renders the model's
own chat turns, so every tool sees the same tokens and the same loss mask; with the same seed they also
see the same batches and LoRA init, and their loss curves agree with mmtune's to fp rounding.
Each run is a fresh subprocess (``sft_contenders.py``) in its tool's venv, timed inside (the
``Trainer.train`` call) and outside (wall time incl. start-up); the contenders run in rotated order
(ABCD, BCDA, ...) for ``--rounds`` rounds. Reported per contender: median samples/s (min-max), median
wall time, mmtune's median per-round ratio against it, its loss curve's largest absolute difference
from mmtune's, and the settings read back from its trainer where they differ from mmtune's.

Set up the two foreign venvs once (/work/venvs/lf, /work/venvs/swift or $MMTUNE_BENCH_VENVS; pip
constraints in benchmarks/sft_envs/):
    python benchmarks/sft_throughput.py --setup
Measure on a quiet machine, from the checkout with mmtune's venv active:
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sft_throughput.py --steps 30 --rounds 8 --out sft_throughput.json
Smoke run (about a minute): ``--steps 3 --rounds 1``. ``--memory`` adds one full-tuning mmtune run and
reports its peak memory against LoRA's (process RSS on a CPU, which only means something on a GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHILD = HERE / "sft_contenders.py"
VENVS = Path(os.environ.get("MMTUNE_BENCH_VENVS", "/work/venvs"))
CONTENDERS = ("mmtune", "trl", "llamafactory", "ms-swift")
BASELINE = "mmtune"
# contender -> (its venv's folder under VENVS, pip requirement, pip constraints); mmtune and TRL run in this venv
TOOLS = {
    "llamafactory": ("lf", "llamafactory==0.9.5", HERE / "sft_envs" / "lf.txt"),
    "ms-swift": ("swift", "ms-swift==4.6.0", HERE / "sft_envs" / "swift.txt"),
}
# What each tool does that no option turns off, so it stays in its numbers (printed with the settings).
NOT_EQUALISED = {
    "mmtune": "validates (renders and tokenizes) every sample before the train loop and writes the tuned adapter "
              "after it: wall time only",
    "trl": "computes entropy and token accuracy on every step (TRL 1.16's fused LM head has no switch)",
    "llamafactory": "tokenizes every sample before the train loop (wall time only; the others render and tokenize "
                    "in the collator, inside the loop); pads each batch to a multiple of 8 tokens (hard-coded); "
                    "writes the adapter after training (wall time only)",
    "ms-swift": "computes token accuracy on every step (no switch); computes the LM head only from the batch's "
                "first labelled position on (use_logits_to_keep, its default, left on as its own optimisation)",
}
NOT_EQUALISED_ALL = ("each tool runs the transformers / peft / accelerate releases it pins (read back per run as "
                     "`libraries`: LLaMA-Factory 0.9.5 needs transformers <= 5.6 and peft <= 0.18.1, ms-swift 4.6 "
                     "transformers < 5.20 and peft < 0.21, mmtune transformers >= 5.23), and their per-op overhead "
                     "differs")
# Pulled in by LF but unused, and no release of either matches CPU torch 2.13 (torchaudio's library fails to
# load; a mismatched torchvision breaks transformers' image processors): removed, the child stubs torchaudio.
UNWANTED = {"llamafactory": ("torchvision", "torchaudio")}
IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class Settings:
    """What every contender is set to; each child maps these onto its tool's own options."""

    steps: int = field(default=30, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "samples per step, no gradient accumulation"})
    lr: float = field(default=1e-3, metadata={"help": "weight decay 0, gradient norm clipped at 1.0"})
    optimizer: str = field(default="adamw_torch_fused", metadata={"help": "transformers' name; mmtune's default"})
    adam_betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "ms-swift's default beta2 is 0.95"})
    adam_epsilon: float = 1e-8
    lr_scheduler: str = field(default="constant", metadata={"help": "no warmup"})
    seed: int = field(default=0, metadata={"help": "seed and data seed: LoRA init and data order"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    precision: str = field(default="fp32", metadata={"help": "no bf16/fp16 autocast"})
    gradient_checkpointing: bool = False
    loss_on: str = field(default="assistant tokens", metadata={"help": "answer and its end-of-turn token"})
    system_prompt: str = field(default="", metadata={"help": "none: the tools' default system prompts removed"})
    torch_threads: int = field(default=1, metadata={"help": "OMP_NUM_THREADS=1 and torch.set_num_threads(1)"})
    eval_save_metrics: str = field(default="off", metadata={"help": "no eval, no checkpoints, no extra step metrics "
                                                                      "where a tool has a switch"})
    data_order: str = field(default="transformers' seeded random sampler over the exported order", metadata={
        "help": "no tool shuffles at load (ms-swift: dataset_shuffle false), so all see the same batches"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "lora_r", "torch_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")


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


def _placeholder_text(message: dict[str, Any]) -> str:
    """A typed-parts message as one string with ``<image>`` where each image part is (LF / ms-swift)."""
    from mmtune.data.sample import content_parts

    return "".join(IMAGE_PLACEHOLDER if p["type"] == "image" else p.get("text", "") for p in content_parts(message))


def export_data(samples: Sequence, out_dir: Path) -> dict[str, Path]:
    """Write ``samples`` once per contender in its own format; images become ``images/<id>.png``.

    mmtune and TRL read the same chat format (typed content parts + an ``images`` list); LLaMA-Factory
    reads ShareGPT rows named in a ``dataset_info.json`` and ms-swift ``messages`` rows, both with
    ``<image>`` in the text. Returns contender -> the file (LF: its dataset folder)."""
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    chat, placeholder = [], []
    for s in samples:
        paths = []
        for j, image in enumerate(s.images):
            path = image_dir / f"{s.id}_{j}.png"
            image.save(path)
            paths.append(str(path))
        chat.append({"id": s.id, "messages": s.messages, "images": paths})
        placeholder.append({"messages": [{"role": m["role"], "content": _placeholder_text(m)} for m in s.messages],
                            "images": paths})
    lf_dir = out_dir / "llamafactory"
    lf_dir.mkdir(exist_ok=True)
    (lf_dir / "dataset_info.json").write_text(json.dumps({"fair": {
        "file_name": "fair.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}}))
    (lf_dir / "fair.json").write_text(json.dumps(placeholder))
    files = {"mmtune": out_dir / "mmtune.jsonl", "trl": out_dir / "trl.jsonl", "ms-swift": out_dir / "swift.jsonl"}
    for name, rows in (("mmtune", chat), ("trl", chat), ("ms-swift", placeholder)):
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {**files, "llamafactory": lf_dir}


def rotated_orders(contenders: Sequence[str], rounds: int) -> list[list[str]]:
    """Round r runs the contenders starting from the r-th: ABCD, BCDA, CDAB, ... so none is always first."""
    n = len(contenders)
    return [list(contenders[r % n:]) + list(contenders[:r % n]) for r in range(rounds)]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: Sequence[dict[str, Any]], baseline: str = BASELINE) -> dict[str, Any]:
    """Per contender: samples/s and wall seconds (median, min, max) over rounds; ``baseline``'s ratio
    against it, one ratio per round (same round, so same machine load), median and range; the largest
    absolute difference of its per-step losses from the baseline's (first round; same data order and
    template give fp rounding only) and of the first step's loss (same first batch and masking)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_name.setdefault(run["contender"], []).append(run)
    base = {r["round"]: r for r in by_name.get(baseline, [])}
    out = {}
    for name, own in by_name.items():
        row = {"samples_per_s": spread([r["samples_per_s"] for r in own]),
               "wall_seconds": spread([r["wall_seconds"] for r in own]),
               "trainable_params": own[0]["trainable_params"], "peak_rss_mb": max(r["peak_memory_mb"] for r in own),
               "applied": own[0].get("applied", {})}
        paired = [(base[r["round"]], r) for r in own if r["round"] in base]
        if name != baseline and paired:
            row["baseline_ratio"] = spread([b["samples_per_s"] / r["samples_per_s"] for b, r in paired])
            b_losses, losses = paired[0][0]["losses"], paired[0][1]["losses"]
            diffs = [abs(a - b) for a, b in zip(b_losses, losses)]
            row["loss_max_abs_diff"] = max(diffs) if diffs else None
            row["first_loss_abs_diff"] = diffs[0] if diffs else None
        out[name] = row
    return out


def markdown_table(summary: dict[str, Any], baseline: str = BASELINE) -> str:
    lines = [f"| contender | samples/s median (min-max) | {baseline} / it | wall s median | "
             "max loss diff (step 1) | trainable | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        sps, wall = row["samples_per_s"], row["wall_seconds"]
        ratio = row.get("baseline_ratio")
        ratio_text = f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else "-"
        diff = row.get("loss_max_abs_diff")
        diff_text = f"{diff:.2g} ({row['first_loss_abs_diff']:.2g})" if diff is not None else "-"
        lines.append(f"| {name} | {sps['median']:.1f} ({sps['min']:.1f}-{sps['max']:.1f}) | {ratio_text} | "
                     f"{wall['median']:.1f} | {diff_text} | {row['trainable_params']:,} | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def applied_differences(summary: dict[str, Any], baseline: str = BASELINE) -> list[str]:
    """Settings a contender's trainer really ran with that differ from the baseline's (read back from each)."""
    base = summary[baseline]["applied"]
    return [f"{name}: {key} = {row['applied'].get(key)!r} ({baseline}: {value!r})"
            for name, row in summary.items() if name != baseline for key, value in base.items()
            if row["applied"].get(key) != value]


def settings_text(settings: Settings) -> str:
    return "\n".join(f"  {f.name} = {getattr(settings, f.name)!r}" + (f"  ({f.metadata['help']})" if f.metadata else "")
                     for f in dataclasses.fields(settings))


def interpreter(contender: str) -> Path:
    """The python that runs ``contender``: its own venv's, or this one's for mmtune and TRL."""
    if contender not in TOOLS:
        return Path(sys.executable)
    python = VENVS / TOOLS[contender][0] / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{contender}: no venv at {python.parent.parent}; create it with "
                         f"`python {Path(__file__).name} --setup` (pins in {TOOLS[contender][2]})")
    return python


def setup_venvs() -> None:
    """Create each foreign tool's venv: CPU torch first (the constraints pin it), then the tool."""
    for contender, (folder, requirement, constraints) in TOOLS.items():
        venv = VENVS / folder
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-c", str(constraints)]
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, requirement], check=True)
        if UNWANTED.get(contender):
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", *UNWANTED[contender]],
                           check=True)
        check = "import torch; assert torch.version.cuda is None, torch.__version__; print(torch.__version__)"
        subprocess.run([str(venv / "bin" / "python"), "-c", check], check=True)


def run_one(contender: str, settings_file: Path, model_dir: Path, data: Path, work: Path,
            strategy: str = "lora") -> dict[str, Any]:
    """One contender's run in a fresh process; wall time counts its start-up and model/data loading."""
    result = work / f"{contender}-{time.monotonic_ns()}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_DISABLED": "true"}
    cmd = [str(interpreter(contender)), str(CHILD), contender, "--settings", str(settings_file),
           "--model-dir", str(model_dir), "--data", str(data), "--result", str(result), "--strategy", strategy]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"{contender} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    stats = json.loads(result.read_text())
    return {"contender": contender, "wall_seconds": wall, **stats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help=f"create the LF and ms-swift venvs under {VENVS} and stop")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="rotations of all contenders (>= 3 for a measurement)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset, in ABCD order")
    parser.add_argument("--memory", action="store_true", help="also run mmtune with full tuning once: peak memory")
    parser.add_argument("--out", type=Path, default=Path("sft_throughput.json"))
    args = parser.parse_args()
    if args.setup:
        setup_venvs()
        return 0
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown or BASELINE not in contenders:
        raise SystemExit(f"--contenders: unknown {unknown} or no {BASELINE}; choose from {', '.join(CONTENDERS)}")
    settings = Settings(steps=args.steps)
    for c in contenders:
        interpreter(c)
    print("Equalised settings (every contender):\n" + settings_text(settings))
    print("Not equalised:\n" + "\n".join(f"  {c}: {NOT_EQUALISED[c]}" for c in contenders)
          + f"\n  all: {NOT_EQUALISED_ALL}", flush=True)

    from mmtune.models.tiny import save_tiny

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = save_tiny("llava", work / "model")
        data = export_data(mixed_length_samples(settings.steps * settings.batch_size, settings.seed), work / "data")
        settings_file = work / "settings.json"
        settings_file.write_text(json.dumps(dataclasses.asdict(settings)))
        for round_, order in enumerate(rotated_orders(contenders, args.rounds)):
            for contender in order:
                run = run_one(contender, settings_file, model_dir, data[contender], work)
                runs.append({"round": round_, **run})
                print(f"round {round_} {contender}: {run['samples_per_s']:.1f} samples/s, "
                      f"wall {run['wall_seconds']:.1f} s", flush=True)
        memory = None
        if args.memory:
            full = run_one(BASELINE, settings_file, model_dir, data[BASELINE], work, strategy="full")
            lora = statistics.median(r["peak_memory_mb"] for r in runs if r["contender"] == BASELINE)
            memory = {"full_peak_mb": full["peak_memory_mb"], "lora_peak_mb": lora,
                      "full_over_lora": full["peak_memory_mb"] / lora}
    summary = summarize(runs)
    report = {"settings": dataclasses.asdict(settings),
              "not_equalised": {**{c: NOT_EQUALISED[c] for c in contenders}, "all": NOT_EQUALISED_ALL},
              "rounds": args.rounds, "summary": summary,
              "memory": memory, "runs": runs}
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown_table(summary))
    differences = applied_differences(summary)
    print("Settings read back from each trainer: " + ("; ".join(differences) if differences else "all equal"))
    if memory:
        print(f"Peak memory, mmtune full vs LoRA: {memory['full_peak_mb']:.0f} / {memory['lora_peak_mb']:.0f} MB")
    print(f"(JSON with every run and loss curve: {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
