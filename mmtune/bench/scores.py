"""The benchmark's scores (Huang et al., 2025): E specializes, F stabilizes, O = E + F trades off.

All scores are in the task metric's own points (e.g. accuracy x 100), so E, F and O share a unit.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RunScores:
    """E, F, O of one tuning run plus the change on every seen task (after - before)."""

    E: float
    F: float
    O: float
    seen_deltas: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def specialization(target_after: float, target_zero_shot: float) -> float:
    """E: what tuning taught = tuned target score - base zero-shot target score."""
    return float(target_after) - float(target_zero_shot)


def seen_deltas(seen_after: Mapping[str, float], seen_before: Mapping[str, float]) -> dict[str, float]:
    """Per seen task, after - before; both sides must score the same tasks."""
    missing = sorted(set(seen_before) ^ set(seen_after))
    if missing:
        raise ValueError(
            f"seen tasks {', '.join(missing)} are scored only before or only after tuning; "
            "evaluate the same seen tasks on the base and the tuned model"
        )
    return {name: float(seen_after[name]) - float(seen_before[name]) for name in sorted(seen_before)}


def stabilization(seen_after: Mapping[str, float], seen_before: Mapping[str, float]) -> float:
    """F: mean over seen tasks of (after - before); negative means the run forgot."""
    deltas = seen_deltas(seen_after, seen_before)
    if not deltas:
        raise ValueError("F needs at least one seen task; list seen tasks in the bench config")
    return sum(deltas.values()) / len(deltas)


def run_scores(
    target_after: float,
    target_zero_shot: float,
    seen_after: Mapping[str, float],
    seen_before: Mapping[str, float],
) -> RunScores:
    """E, F, O and the per-seen-task deltas of one run."""
    e = specialization(target_after, target_zero_shot)
    f = stabilization(seen_after, seen_before)
    return RunScores(E=e, F=f, O=e + f, seen_deltas=seen_deltas(seen_after, seen_before))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) over seeds; one seed has std 0."""
    if not values:
        raise ValueError("mean_std needs at least one value (no finished runs for this row?)")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def aggregate_seeds(runs: Sequence[RunScores]) -> dict[str, tuple[float, float]]:
    """Mean ± std of E, F, O over the seeds of one (target, strategy) row."""
    return {key: mean_std([getattr(r, key) for r in runs]) for key in ("E", "F", "O")}
