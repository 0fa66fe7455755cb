"""EWC (loss phase; Kirkpatrick et al., 2017): a quadratic pull towards the weights before tuning,
each weight scaled by how much the seen tasks need it, ``weight / 2 * sum_i F_i (w_i - w0_i)^2``.

``F`` is the diagonal of the empirical Fisher information on seen-task data, the mean over
batches of the squared gradient of the (token-averaged) loss, as in the original paper's
diagonal approximation; with no seen data there is nothing to protect and EWC refuses to run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mmtune.methods.base import (
    AnchorConfig,
    LossContext,
    WeightedAnchor,
    gradient_importance,
    register_method,
)


@dataclass
class EWCConfig(AnchorConfig):
    weight: float = field(default=100.0, metadata={"help": "lambda: strength of the Fisher-weighted pull"})
    batches: int = field(default=8, metadata={"help": "seen-data batches that estimate the Fisher diagonal"})


def diagonal_fisher(model: nn.Module, batches, max_batches: int) -> dict[str, torch.Tensor]:
    """Mean squared gradient of the loss per trainable parameter over up to ``max_batches`` batches."""
    return gradient_importance(model, batches, max_batches, objective=lambda out, batch: out.loss,
                               statistic=torch.square, method="ewc")


class EWC(WeightedAnchor):
    def __init__(self, weight: float, batches: int) -> None:
        super().__init__(0.5 * float(weight))
        self.batches = batches

    @property
    def fisher(self) -> dict[str, torch.Tensor]:
        return self.importance

    def estimate(self, context: LossContext) -> dict[str, torch.Tensor]:
        return diagonal_fisher(context.model, context.seen_batches(), self.batches)


@register_method("ewc", "loss", "Fisher-weighted pull towards the base weights, Fisher on seen data (EWC)",
                 EWCConfig, needs_seen_data=True)
def ewc(config: EWCConfig) -> EWC:
    return EWC(config.weight, config.batches)
