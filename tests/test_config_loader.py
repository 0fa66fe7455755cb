"""config.py: YAML + dotted overrides into nested dataclasses; bad keys are named."""
from dataclasses import dataclass, field

import pytest

from mmtune.config import ConfigError, load_config, parse_overrides


@dataclass
class Source:
    path: str
    ratio: float = 1.0


@dataclass
class Train:
    lr: float = 1e-4
    steps: int = 10
    bf16: bool = False


@dataclass
class Run:
    model: str
    sources: list[Source] = field(default_factory=list)
    train: Train = field(default_factory=Train)
    tags: list[str] = field(default_factory=list)


def test_yaml_and_overrides_fill_nested_dataclasses(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model: m\nsources:\n  - {path: a.json, ratio: 2}\n  - {path: b.json}\ntrain: {lr: 0.5}\n")
    cfg = load_config(Run, cfg_file, ["train.steps=3", "train.lr=1e-3", "tags=x,y"])
    assert cfg.sources == [Source("a.json", 2.0), Source("b.json", 1.0)]
    assert isinstance(cfg.sources[0].ratio, float)
    assert cfg.train == Train(lr=1e-3, steps=3, bf16=False)
    assert cfg.tags == ["x", "y"]


def test_unknown_key_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.lrr.*valid keys under train: bf16, lr, steps"):
        load_config(Run, None, ["model=m", "train.lrr=1"])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.pth"):
        load_config(Run, None, ["model=m", "sources=[{pth: a}]"])


def test_wrong_types_and_missing_keys_are_named():
    with pytest.raises(ConfigError, match="train.steps must be an integer"):
        load_config(Run, None, ["model=m", "train.steps=many"])
    with pytest.raises(ConfigError, match="model.*required"):
        load_config(Run, None, [])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
