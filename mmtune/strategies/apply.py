"""``apply_strategy``: freeze the model, then let each part of the spec attach or unfreeze weights."""

from __future__ import annotations

from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.models.generic import unwrap
from mmtune.models.quantization import is_quantized, prepare_for_kbit_training
from mmtune.strategies.registry import ResolvedStrategy, resolve
from mmtune.strategies.summary import StrategySummary


def apply_strategy(
    model: nn.Module, spec: str | ResolvedStrategy, groups: ModelGroups | None = None
) -> tuple[nn.Module, StrategySummary]:
    """Prepare ``model`` for tuning with ``spec``; returns the (maybe PEFT-wrapped) model and a summary.
    A quantized base (QLoRA) is prepared with PEFT's k-bit preparation first."""
    strategy = resolve(spec)  # validate everything before touching the model
    if groups is None:
        from mmtune.models import resolve_groups

        groups = resolve_groups(unwrap(model))
    if is_quantized(model):
        model = prepare_for_kbit_training(model, [str(s) for s, e, _ in strategy.parts if e.info.paradigm == "selective"])
    for p in model.parameters():
        p.requires_grad_(False)
    for _, entry, cfg in strategy.parts:
        model = entry.apply(model, groups, cfg)
    return model, StrategySummary.of(model, groups, strategy.spec)
