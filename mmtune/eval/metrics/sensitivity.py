"""Instruction sensitivity (MultiInstruct): how much a score moves across reworded instructions."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def sensitivity(scores_by_template: Mapping[str, float] | Sequence[float]) -> float:
    """Population standard deviation / mean of one task's score across templates (nan if mean is 0)."""
    values = list(scores_by_template.values()) if isinstance(scores_by_template, Mapping) else list(scores_by_template)
    if not values:
        raise ValueError("sensitivity: no scores given; evaluate the task with at least one template")
    mean = sum(values) / len(values)
    if mean == 0:
        return math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return std / mean
