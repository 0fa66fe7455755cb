"""Which strategies are worth using: the (E, F) Pareto frontier and a recommendation per target.

Both read the noise: with 95% intervals, one row beats another on a score only where their
intervals are disjoint. A row leaves the frontier only when another is at least as good on E and F
and beats it beyond the noise on one of them; the recommended row ties with every row whose O
interval overlaps its own. Without intervals (runs recorded without per-sample scores) a score's
interval is the point itself, and both rules reduce to plain comparisons.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(frozen=True)
class Point:
    """One strategy's (mean) scores on one target, with their 95% intervals when known."""

    name: str
    E: float
    F: float
    E_ci: Interval | None = None
    F_ci: Interval | None = None
    O_ci: Interval | None = None

    @property
    def O(self) -> float:
        return self.E + self.F

    def interval(self, score: str) -> Interval:
        ci = getattr(self, f"{score}_ci")
        value = getattr(self, score)
        return (value, value) if ci is None else ci


@dataclass(frozen=True)
class Recommendation:
    name: str
    why: str
    tied: tuple[str, ...] = ()  # rows whose O interval overlaps the recommended row's


def beats(a: Point, b: Point, score: str) -> bool:
    """``a`` is better than ``b`` on ``score`` beyond the noise: a's interval lies above b's."""
    return a.interval(score)[0] > b.interval(score)[1]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on both E and F and beats it beyond the noise on one."""
    return a.E >= b.E and a.F >= b.F and (beats(a, b, "E") or beats(a, b, "F"))


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates (maximize E and F), sorted by E descending."""
    front = [p for p in points if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda p: (-p.E, -p.F, p.name))


def ties_on(best: Point, others: Sequence[Point], score: str) -> list[Point]:
    """The points whose ``score`` interval overlaps ``best``'s: the noise cannot order them."""
    low, high = best.interval(score)
    return [p for p in others if p.name != best.name and p.interval(score)[0] <= high and p.interval(score)[1] >= low]


def recommend(points: Sequence[Point]) -> Recommendation:
    """The frontier point with the best mean O, the rows it ties with on O, and one line saying what
    it trades against the top-E one."""
    if not points:
        raise ValueError("no finished runs to recommend from; run the bench first")
    front = pareto_front(points)
    best = max(front, key=lambda p: (p.O, p.E))  # ties: the first in frontier order (higher E, then name)
    top_e = front[0]
    tied = sorted(ties_on(best, points, "O"), key=lambda p: (-p.O, p.name))
    has_ci = best.O_ci is not None
    head = f"highest O ({best.O:+.1f}) among {len(front)} non-dominated of {len(points)}"
    if tied and has_ci:
        tail = (f"; ties on O with {', '.join(p.name for p in tied)} (95% intervals overlap: "
                "the difference is within the noise)")
    elif tied:
        tail = f"; ties on O with {', '.join(p.name for p in tied)}"
    elif has_ci:
        tail = "; its O interval lies above every other row's"
    else:
        tail = ""
    if top_e.name == best.name:
        return Recommendation(best.name, f"{head}; also the highest E ({best.E:+.1f}){tail}",
                              tuple(p.name for p in tied))
    return Recommendation(
        best.name,
        f"{head}; forgets {best.F - top_e.F:.1f} points less than {top_e.name} "
        f"for {top_e.E - best.E:.1f} less E{tail}",
        tuple(p.name for p in tied),
    )
