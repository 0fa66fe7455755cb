"""L2-SP (loss phase; Li et al., 2018): penalize the squared distance of the trainable weights to
their values before tuning, ``weight * sum_i (w_i - w0_i)^2``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmtune.methods.base import LossContext, check_number, register_method, trainable_snapshot


@dataclass
class L2SPConfig:
    weight: float = field(default=0.01, metadata={"help": "weight of ||w - w_init||^2 over the trainable weights"})

    def __post_init__(self) -> None:
        check_number("weight", self.weight, low=0)


class L2SP:
    def __init__(self, weight: float) -> None:
        self.weight = float(weight)
        self.anchors: dict[str, torch.Tensor] = {}

    def setup(self, context: LossContext) -> None:
        self.anchors = trainable_snapshot(context.model)

    def penalty(self, model: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        distance = sum((p - self.anchors[n]).pow(2).sum() for n, p in model.named_parameters() if n in self.anchors)
        return self.weight * distance


@register_method("l2sp", "loss", "penalize the distance to the base weights (L2-SP)", L2SPConfig)
def l2sp(config: L2SPConfig) -> L2SP:
    return L2SP(config.weight)
