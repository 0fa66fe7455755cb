"""What a strategy made trainable: parameter counts per group, as a dict and a text table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mmtune.models.family import GROUPS, ModelGroups
from mmtune.strategies.targets import plain_named_parameters


@dataclass
class StrategySummary:
    """Trainable / total parameters per group under one strategy spec."""

    spec: str
    trainable: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module, groups: ModelGroups, spec: str) -> StrategySummary:
        out = cls(spec, {g: 0 for g in (*GROUPS, "other")}, {g: 0 for g in (*GROUPS, "other")})
        for name, p in plain_named_parameters(model):  # shared (tied) tensors come once
            g = groups.group_of(name)
            out.total[g] += p.numel()
            out.trainable[g] += p.numel() if p.requires_grad else 0
        for g in [g for g, n in out.total.items() if n == 0]:
            del out.total[g], out.trainable[g]
        return out

    @property
    def trainable_params(self) -> int:
        return sum(self.trainable.values())

    @property
    def total_params(self) -> int:
        return sum(self.total.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "groups": {g: {"trainable": self.trainable[g], "total": self.total[g]} for g in self.total},
        }

    def table(self) -> str:
        rows = [(g, self.trainable[g], self.total[g]) for g in self.total]
        rows.append(("all", self.trainable_params, self.total_params))
        width = max(len(r[0]) for r in rows)
        lines = [f"strategy: {self.spec}", f"{'group':<{width}}  {'trainable':>13}  {'total':>13}  {'%':>6}"]
        for g, t, n in rows:
            lines.append(f"{g:<{width}}  {t:>13,}  {n:>13,}  {100 * t / max(n, 1):>6.2f}")
        return "\n".join(lines)
