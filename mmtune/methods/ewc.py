"""EWC (loss phase; Kirkpatrick et al., 2017): a quadratic pull towards the weights before tuning,
each weight scaled by how much the seen tasks need it, ``weight / 2 * sum_i F_i (w_i - w0_i)^2``.

``F`` is the diagonal of the empirical Fisher information on seen-task data, the mean over
batches of the squared gradient of the (token-averaged) loss, as in the original paper's
diagonal approximation; with no seen data there is nothing to protect and EWC refuses to run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmtune.methods.base import LossContext, check_number, register_method, trainable_snapshot


@dataclass
class EWCConfig:
    weight: float = field(default=100.0, metadata={"help": "lambda: strength of the Fisher-weighted pull"})
    batches: int = field(default=8, metadata={"help": "seen-data batches that estimate the Fisher diagonal"})

    def __post_init__(self) -> None:
        check_number("weight", self.weight, low=0)
        if not isinstance(self.batches, int) or isinstance(self.batches, bool) or self.batches < 1:
            raise ValueError(f"batches must be a positive integer, got {self.batches!r}")


def diagonal_fisher(model: nn.Module, batches, max_batches: int) -> dict[str, torch.Tensor]:
    """Mean squared gradient of the loss per trainable parameter over up to ``max_batches`` batches."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training, n_batches = model.training, 0
    model.eval()  # no dropout: the Fisher of the model as it is
    try:
        for batch in batches:
            if n_batches == max_batches:
                break
            model.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach().float().pow(2)
            n_batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if not n_batches:
        raise ValueError("ewc needs seen-task data to estimate the Fisher information; give seen data "
                         "(seen_data: in a train config; the bench passes its seen sets)")
    return {n: f / n_batches for n, f in fisher.items()}


class EWC:
    def __init__(self, weight: float, batches: int) -> None:
        self.weight, self.batches = float(weight), batches
        self.anchors: dict[str, torch.Tensor] = {}
        self.fisher: dict[str, torch.Tensor] = {}

    def setup(self, context: LossContext) -> None:
        self.anchors = trainable_snapshot(context.model)
        self.fisher = diagonal_fisher(context.model, context.seen_batches(), self.batches)

    def penalty(self, model: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        total = sum((self.fisher[n] * (p - self.anchors[n]).pow(2)).sum()
                    for n, p in model.named_parameters() if n in self.anchors)
        return 0.5 * self.weight * total


@register_method("ewc", "loss", "Fisher-weighted pull towards the base weights, Fisher on seen data (EWC)",
                 EWCConfig, needs_seen_data=True)
def ewc(config: EWCConfig) -> EWC:
    return EWC(config.weight, config.batches)
