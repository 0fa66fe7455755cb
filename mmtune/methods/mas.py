"""MAS, Memory Aware Synapses (loss phase; Aljundi et al., 2018): like EWC a pull toward the weights
before tuning, each weight by its importance, but the importance needs no labels: the mean absolute
gradient of the squared L2 norm of the model's output, ``Omega_i = mean |d ||F(x)||^2 / d w_i|`` over
seen-task inputs. The output here is the logits at the positions the SFT loss trains on, their
squared norm averaged over those positions and taken per batch (the paper takes it per sample)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmtune.methods.base import (
    AnchorConfig,
    LossContext,
    WeightedAnchor,
    gradient_importance,
    register_method,
)


@dataclass
class MASConfig(AnchorConfig):
    """MAS's defaults are AnchorConfig's."""


def output_norm(outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over the labelled positions of the squared L2 norm of the logits that predict them."""
    mask = batch["labels"][:, 1:] != -100
    return outputs.logits[:, :-1][mask].float().pow(2).sum(-1).mean()


class MAS(WeightedAnchor):
    def __init__(self, weight: float, batches: int) -> None:
        super().__init__(weight)
        self.batches = batches

    def estimate(self, context: LossContext) -> dict[str, torch.Tensor]:
        return gradient_importance(context.model, context.seen_batches(), self.batches,
                                   objective=output_norm, statistic=torch.abs, method="mas")


@register_method("mas", "loss", "pull towards the base weights by output sensitivity on seen inputs (MAS)",
                 MASConfig, needs_seen_data=True)
def mas(config: MASConfig) -> MAS:
    return MAS(config.weight, config.batches)
