"""Reparameterization tuning through PEFT: LoRA and its calibrations (DoRA, rsLoRA, PiSSA), VeRA, LoHa.

Each strategy builds a PEFT config whose ``target_modules`` is the exact list of nn.Linear
module names inside the chosen groups (decoder layers by default), so the vision tower is never
touched unless ``groups=`` names it. The model is wrapped with ``get_peft_model``; no model class
is subclassed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from peft import LoHaConfig, LoraConfig, PeftConfig, VeraConfig, get_peft_model
from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.models.generic import unwrap
from mmtune.strategies.registry import register_strategy
from mmtune.strategies.targets import check_group_names, linear_targets


@dataclass
class LowRankConfig:
    r: int = field(default=8, metadata={"help": "rank of the update"})
    alpha: float = field(default=16, metadata={"help": "scaling numerator (update scaled by alpha/r)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    groups: tuple[str, ...] = field(
        default=("llm",),
        metadata={"help": "groups whose linears are targeted: llm, vision, projector, lm_head (join with |)"},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r < 1:
            raise ValueError(f"r must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        check_group_names(self.groups)


@dataclass
class VeraStrategyConfig:
    r: int = field(default=256, metadata={"help": "rank of the shared random projections"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    groups: tuple[str, ...] = field(default=("llm",), metadata={"help": "groups whose linears are targeted"})

    def __post_init__(self) -> None:
        LowRankConfig(r=self.r, dropout=self.dropout, groups=self.groups)  # same rules


def _lora(**extra) -> Callable[[LowRankConfig, list[str]], PeftConfig]:
    return lambda c, targets: LoraConfig(
        r=c.r,
        lora_alpha=c.alpha,
        lora_dropout=c.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        **extra,
    )


def _peft_strategy(build: Callable[[object, list[str]], PeftConfig]):
    def apply(model: nn.Module, groups: ModelGroups, cfg) -> nn.Module:
        return get_peft_model(model, build(cfg, linear_targets(unwrap(model), groups, cfg.groups)))

    return apply


_VARIANTS: dict[str, tuple[str, type, Callable]] = {
    "lora": ("low-rank update B@A on each targeted linear (LoRA)", LowRankConfig, _lora()),
    "dora": ("LoRA with a learned per-column magnitude (DoRA)", LowRankConfig, _lora(use_dora=True)),
    "rslora": (
        "LoRA scaled by alpha/sqrt(r), stable at high rank (rsLoRA)",
        LowRankConfig,
        _lora(use_rslora=True),
    ),
    "pissa": (
        "LoRA initialised from the principal singular vectors; base keeps the residual (PiSSA)",
        LowRankConfig,
        _lora(init_lora_weights="pissa"),
    ),
    "loha": (
        "low-rank Hadamard product update (LoHa)",
        LowRankConfig,
        lambda c, targets: LoHaConfig(
            r=c.r, alpha=c.alpha, module_dropout=c.dropout, target_modules=targets, task_type="CAUSAL_LM"
        ),
    ),
    "vera": (
        "frozen shared random projections, trained scaling vectors (VeRA)",
        VeraStrategyConfig,
        lambda c, targets: VeraConfig(
            r=c.r, vera_dropout=c.dropout, target_modules=targets, task_type="CAUSAL_LM"
        ),
    ),
}

for _name, (_desc, _cfg, _build) in _VARIANTS.items():
    register_strategy(_name, "reparameterization", _desc, _cfg, uses_peft=True)(_peft_strategy(_build))
