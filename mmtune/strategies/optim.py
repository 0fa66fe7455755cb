"""Optimizer parameter groups: a learning rate per model group, no weight decay on biases/norms."""

from __future__ import annotations

from typing import Any

from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.strategies.targets import check_group_names, expand_groups, plain_named_parameters


def optimizer_param_groups(
    model: nn.Module,
    groups: ModelGroups,
    lr: float,
    group_lr: dict[str, float],
    *,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Torch optimizer param groups for the trainable parameters.

    ``group_lr`` maps selectors (``projector``, ``llm``, ``vision`` or any group name) to a learning
    rate, e.g. the LLaVA recipe's ``{"projector": 2e-5}`` with ``lr=2e-4``; the rest use ``lr``.
    One-dimensional tensors (biases, norm weights, gates) get no weight decay, as in the
    transformers Trainer.
    """
    check_group_names(group_lr, option="group_lr")
    lr_of = {g: value for sel, value in group_lr.items() for g in expand_groups([sel])}
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in plain_named_parameters(model):
        if p.requires_grad:
            g = groups.group_of(name)
            buckets.setdefault((g if g in lr_of else "default", p.ndim >= 2), []).append(p)
    if not buckets:
        raise ValueError(f"{type(model).__name__} has no trainable parameters; apply a strategy first")
    return [
        {
            "params": params,
            "lr": lr_of.get(g, lr),
            "weight_decay": weight_decay if decay else 0.0,
            "name": f"{g}/{'decay' if decay else 'no_decay'}",
        }
        for (g, decay), params in sorted(buckets.items())
    ]
