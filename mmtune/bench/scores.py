"""The benchmark's scores (Huang et al., 2025): E specializes, F stabilizes, O = E + F trades off.

One scale for every metric: a change is counted in points of its metric's full range,
100 x (after - before) / range, before seen sets are averaged into F. Accuracies, VQA accuracy,
exact match, F1 and acc@0.5 run 0-100, so their changes are the paper's points unchanged; CIDEr-D
(x100 here, as published tables print it) runs 0-1000, so a caption change counts a tenth of its raw
size. Why the full range rather than the change relative to the base's own score: it is defined
when a base scores 0 on a set, it keeps the paper's F and O wherever every set is 0-100, and it does
not enlarge the sets a base is weak on. The raw per-set deltas are kept beside (``seen_deltas``).
A metric that counts errors (CHAIR_i: a task kind with ``higher_is_better`` False) has its change
negated on the common scale, so E and F always count an improvement as positive: E of CHAIR_i is its drop.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field

# A metric's full range in mmtune's units; every metric not listed runs 0-100.
METRIC_RANGES: dict[str, float] = {"cider": 1000.0}  # CIDEr-D <= 10 per n-gram order, x100
DEFAULT_RANGE = 100.0


def metric_range(metric: str) -> float:
    """The full range of ``metric`` (the eval task's score key): 1000 for CIDEr-D, else 100."""
    return METRIC_RANGES.get(metric, DEFAULT_RANGE)


def higher_is_better(metric: str) -> bool:
    """False for the headline metric of a task kind declared lower-is-better (CHAIR_i), else True."""
    from mmtune.eval.tasks.kinds import TASK_KINDS

    return all(kind.higher_is_better for kind in TASK_KINDS.values() if kind.metric == metric)


@dataclass(frozen=True)
class RunScores:
    """E, F, O of one tuning run, the raw change on every seen task (after - before) and that change
    on the common scale (``seen_scaled``, whose mean is F)."""

    E: float
    F: float
    O: float
    seen_deltas: dict[str, float] = field(default_factory=dict)
    seen_scaled: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def on_scale(delta: float, full_range: float = DEFAULT_RANGE, higher_is_better: bool = True) -> float:
    """A change in points of its metric's full range: 100 x delta / range, negated where lower is better."""
    if full_range <= 0:
        raise ValueError(f"a metric's full range must be > 0, got {full_range}")
    change = 100.0 * float(delta) / full_range
    return change if higher_is_better else 0.0 - change  # 0.0 - x: no -0.0 for no change


def specialization(target_after: float, target_zero_shot: float, full_range: float = DEFAULT_RANGE,
                   higher_is_better: bool = True) -> float:
    """E: what tuning taught = tuned target score - base zero-shot target score, on the common scale
    (for a lower-is-better metric such as CHAIR_i: zero-shot - tuned, its drop)."""
    return on_scale(float(target_after) - float(target_zero_shot), full_range, higher_is_better)


def seen_deltas(seen_after: Mapping[str, float], seen_before: Mapping[str, float]) -> dict[str, float]:
    """Per seen task, after - before; both sides must score the same tasks."""
    missing = sorted(set(seen_before) ^ set(seen_after))
    if missing:
        raise ValueError(
            f"seen tasks {', '.join(missing)} are scored only before or only after tuning; "
            "evaluate the same seen tasks on the base and the tuned model"
        )
    return {name: float(seen_after[name]) - float(seen_before[name]) for name in sorted(seen_before)}


def scaled_deltas(seen_after: Mapping[str, float], seen_before: Mapping[str, float],
                  ranges: Mapping[str, float] | None = None, lower_is_better: Collection[str] = ()) -> dict[str, float]:
    """Per seen task, after - before on the common scale (``ranges``: task -> full range, default 100);
    negated for the tasks in ``lower_is_better``, so positive is always better."""
    ranges = ranges or {}
    return {name: on_scale(d, ranges.get(name, DEFAULT_RANGE), name not in lower_is_better)
            for name, d in seen_deltas(seen_after, seen_before).items()}


def stabilization(seen_after: Mapping[str, float], seen_before: Mapping[str, float],
                  ranges: Mapping[str, float] | None = None, lower_is_better: Collection[str] = ()) -> float:
    """F: mean over seen tasks of the improvement on the common scale; negative means the run forgot."""
    deltas = scaled_deltas(seen_after, seen_before, ranges, lower_is_better)
    if not deltas:
        raise ValueError("F needs at least one seen task; list seen tasks in the bench config")
    return sum(deltas.values()) / len(deltas)


def run_scores(
    target_after: float,
    target_zero_shot: float,
    seen_after: Mapping[str, float],
    seen_before: Mapping[str, float],
    ranges: Mapping[str, float] | None = None,
    target_range: float = DEFAULT_RANGE,
    lower_is_better: Collection[str] = (),
    target_higher_is_better: bool = True,
) -> RunScores:
    """E, F, O and the per-seen-task deltas (raw and scaled) of one run; ``lower_is_better`` names the
    seen tasks whose metric counts errors."""
    e = specialization(target_after, target_zero_shot, target_range, target_higher_is_better)
    f = stabilization(seen_after, seen_before, ranges, lower_is_better)
    return RunScores(E=e, F=f, O=e + f, seen_deltas=seen_deltas(seen_after, seen_before),
                     seen_scaled=scaled_deltas(seen_after, seen_before, ranges, lower_is_better))


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


SCALE_CHOICE = {
    "name": "full_range",
    "formula": "100 x (after - before) / the metric's full range, per set, before seen sets are averaged into F",
    "ranges": {**METRIC_RANGES, "every other metric": DEFAULT_RANGE},
    "why": "defined when a base scores 0, keeps the paper's points wherever every set is 0-100, does not "
           "enlarge the sets a base is weak on; a CIDEr-D change counts a tenth of its raw size",
    "raw": "seen_deltas: after - before in each metric's own points",
}
