"""Every YAML in configs/ loads into its dataclass; the tiny SFT ones also train 2 steps via the CLI."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmtune.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _sft(path: Path) -> Any:
    from mmtune.recipes.sft import SFTConfig

    return load_config(SFTConfig, path)


def _bench(path: Path) -> Any:
    return importlib.import_module("mmtune.bench.grid").load_bench_config(path)


def _align(path: Path) -> Any:
    from mmtune.recipes.align.config import AlignConfig

    return load_config(AlignConfig, path)


# File-name prefix -> loader; a config family adds one row.
LOADERS: dict[str, Callable[[Path], Any]] = {"sft_": _sft, "bench_": _bench, "align_": _align}
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_there_are_configs():
    assert any(p.name.startswith("sft_") for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path: Path):
    loader = next((fn for prefix, fn in LOADERS.items() if path.name.startswith(prefix)), None)
    assert loader, f"{path.name}: no loader for its prefix; add one to LOADERS ({', '.join(LOADERS)})"
    config = loader(path)
    assert type(config).__name__.endswith("Config")


def test_real_llava_config_matches_the_reference_setting():
    config = _sft(CONFIG_DIR / "sft_llava_real.yaml")
    t = config.training
    assert config.strategy.startswith("lora(r=32, alpha=64")
    assert (t.lr, t.group_lr, t.epochs, t.lr_scheduler, t.warmup_ratio, t.max_length) == (
        2e-4, {"projector": 2e-5}, 3.0, "cosine", 0.03, 2048)


@pytest.mark.parametrize("name", ["sft_tiny_lora.yaml", "sft_tiny_top2_projector.yaml"])
def test_tiny_config_trains_two_steps_through_the_cli(name, tmp_path):
    import json

    from PIL import Image

    from mmtune.cli import main
    from mmtune.models.tiny import save_tiny
    from mmtune.recipes.sft import SFTConfig

    model_dir = save_tiny("llava", tmp_path / "model")
    rows = []
    for i, color in enumerate(["red", "green", "blue", "yellow"]):
        Image.new("RGB", (16, 16), color).save(tmp_path / f"{i}.png")
        rows.append({"id": f"r{i}", "images": [f"{i}.png"], "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what color"}]},
            {"role": "assistant", "content": [{"type": "text", "text": color}]}]})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"model={model_dir}", f"output_dir={tmp_path / 'run'}", "training.max_steps=2",
                 "training.save_steps=0", "training.batch_size=2", "training.grad_accum=1"]
    config = load_config(SFTConfig, CONFIG_DIR / name, overrides)
    sources = [f"data={json.dumps([{'path': str(data), 'ratio': d.ratio} for d in config.data])}"]
    if config.seen_data:  # replay / EWC read general data: the same rows stand in for it
        sources.append(f"seen_data={json.dumps([{'path': str(data)} for _ in config.seen_data])}")
    argv = ["train", str(CONFIG_DIR / name)] + [a for o in overrides + sources for a in ("--set", o)]
    assert main(argv) == 0
    record = json.loads((tmp_path / "run" / "final" / "mmtune.json").read_text())
    assert record["meta"]["steps"] == 2 and len(record["meta"]["losses"]) == 2
