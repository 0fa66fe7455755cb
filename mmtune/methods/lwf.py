"""LwF (loss phase; Li & Hoiem, 2017): distil towards the base model's own outputs on the tuning
inputs, so the tuned model keeps answering as the base did where the new task does not say
otherwise. The term is ``weight * T^2 * KL(p_base^T || p_model^T)``, averaged over the response
tokens (the positions the SFT loss trains on), with ``p^T`` the softmax at temperature ``T``
(Hinton et al.'s scaling keeps the gradient size independent of ``T``).

The base's outputs come from the same model with its PEFT adapters disabled when it has them (no
second copy), else from a frozen copy made before step 0 (twice the weights in memory).
"""
from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmtune.methods.base import LossContext, check_number, register_method


@dataclass
class LwFConfig:
    weight: float = field(default=1.0, metadata={"help": "weight of the distillation term"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature T of both distributions"})

    def __post_init__(self) -> None:
        check_number("weight", self.weight, low=0)
        check_number("temperature", self.temperature, low=0)
        if self.temperature == 0:
            raise ValueError("temperature must be > 0")


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """``T^2 * KL(teacher^T || student^T)`` averaged over the positions that predict a label
    (logits at ``t`` predict token ``t + 1``; labels of -100 are not trained on)."""
    mask = labels[:, 1:] != -100
    if not mask.any():
        return student_logits.sum() * 0.0
    s = student_logits[:, :-1][mask].float() / temperature
    t = teacher_logits[:, :-1][mask].float() / temperature
    kl = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
    return kl * temperature**2


class LwF:
    reads_logits = True  # its penalty reads every position's logits: the trainer keeps them all

    def __init__(self, weight: float, temperature: float) -> None:
        self.weight, self.temperature = float(weight), float(temperature)
        self.teacher: nn.Module | None = None

    def setup(self, context: LossContext) -> None:
        if not hasattr(context.model, "disable_adapter"):
            self.teacher = copy.deepcopy(context.model).eval().requires_grad_(False)

    def _teacher_logits(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        inputs = {k: v for k, v in inputs.items() if k != "labels"}
        teacher = self.teacher if self.teacher is not None else model
        adapters_off = model.disable_adapter() if self.teacher is None else nullcontext()
        with torch.no_grad(), adapters_off:
            return teacher(**inputs).logits

    def penalty(self, model: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        teacher = self._teacher_logits(model, inputs)
        return self.weight * distillation_kl(outputs.logits, teacher, inputs["labels"], self.temperature)


@register_method("lwf", "loss", "distil towards the base model's outputs on the tuning data (LwF)", LwFConfig)
def lwf(config: LwFConfig) -> LwF:
    return LwF(config.weight, config.temperature)
