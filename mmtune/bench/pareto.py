"""Which strategies are worth using: the (E, F) Pareto frontier and a recommendation per target."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One strategy's (mean) scores on one target."""

    name: str
    E: float
    F: float

    @property
    def O(self) -> float:
        return self.E + self.F


@dataclass(frozen=True)
class Recommendation:
    name: str
    why: str


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on both E and F and strictly better on one."""
    return a.E >= b.E and a.F >= b.F and (a.E > b.E or a.F > b.F)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points (maximize E and F), sorted by E descending."""
    front = [p for p in points if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda p: (-p.E, -p.F, p.name))


def recommend(points: Sequence[Point]) -> Recommendation:
    """The frontier point with the best O, with one line saying what it trades against the top-E one."""
    if not points:
        raise ValueError("no finished runs to recommend from; run the bench first")
    front = pareto_front(points)
    best = max(front, key=lambda p: (p.O, p.E))  # ties: the first in frontier order (higher E, then name)
    top_e = front[0]
    head = f"highest O ({best.O:+.1f}) among {len(front)} non-dominated of {len(points)}"
    if top_e.name == best.name:
        tied = [p.name for p in front[1:] if (p.E, p.F) == (best.E, best.F)]
        tail = f"; ties on E and F with {', '.join(tied)}" if tied else ""
        return Recommendation(best.name, f"{head}; also the highest E ({best.E:+.1f}){tail}")
    return Recommendation(
        best.name,
        f"{head}; forgets {best.F - top_e.F:.1f} points less than {top_e.name} "
        f"for {top_e.E - best.E:.1f} less E",
    )
