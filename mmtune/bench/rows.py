"""Bench rows: a tuning strategy plus the anti-forgetting methods applied around it.

A row is written in the strategy spec syntax, with extra parts that are not strategies but bench
methods: ``lora+replay(fraction=0.2)``, ``full+l2sp(weight=0.01)``, ``full+wise_ft(alpha=0.5)``,
``full+merge(method=ties, density=0.5)``. Training-time methods (replay, l2sp) change how the run
trains; posterior methods (wise_ft, merge) reuse the finished runs of the row without them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mmtune.strategies.spec import StrategySpec, format_spec, parse_spec


@dataclass(frozen=True)
class BenchMethod:
    """A bench method: its arguments with defaults, and whether it acts after training."""

    defaults: dict[str, Any]
    posterior: bool
    help: str


BENCH_METHODS: dict[str, BenchMethod] = {
    "replay": BenchMethod({"fraction": 0.2}, False, "mix seen-task samples into the tuning set"),
    "l2sp": BenchMethod({"weight": 0.01}, False, "penalize distance to the base weights (L2-SP)"),
    "wise_ft": BenchMethod({"alpha": 0.5}, True, "interpolate the tuned weights with the base (WiSE-FT)"),
    "merge": BenchMethod({"method": "task_arithmetic"}, True,
                         "merge the task vectors of every target's run (task arithmetic / TIES / DARE)"),
}


@dataclass(frozen=True)
class Row:
    """One bench row, parsed; ``label`` is its canonical text, used in ids and reports."""

    label: str
    strategy: str
    replay: float = 0.0
    l2sp: float = 0.0
    posterior: str | None = None
    posterior_args: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # label of the row whose trained runs a posterior row reuses

    @property
    def trains(self) -> bool:
        return self.posterior is None

    @property
    def strategy_name(self) -> str:
        """The first strategy's name, which picks the row's learning rate."""
        return parse_spec(self.strategy)[0].name


def parse_row(text: str) -> Row:
    """Parse a row like ``lora(r=8)+replay(fraction=0.2)``; errors name the row and the fix."""
    parts = parse_spec(text)
    strategy = [p for p in parts if p.name not in BENCH_METHODS]
    methods: dict[str, dict[str, Any]] = {}
    for p in parts:
        if p.name in BENCH_METHODS:
            if p.name in methods:
                raise ValueError(f"bench row {text!r}: {p.name} is given twice")
            methods[p.name] = _method_args(text, p)
    if not strategy:
        raise ValueError(f"bench row {text!r} names no tuning strategy; write e.g. lora+{text}")
    posterior = [m for m in methods if BENCH_METHODS[m].posterior]
    if len(posterior) > 1:
        raise ValueError(f"bench row {text!r}: use one of {', '.join(posterior)} per row")
    label = format_spec(parts)
    if not posterior:
        return Row(label, format_spec(strategy),
                   replay=float(methods.get("replay", {}).get("fraction", 0.0)),
                   l2sp=float(methods.get("l2sp", {}).get("weight", 0.0)))
    source_parts = [p for p in parts if p.name != posterior[0]]
    source = parse_row(format_spec(source_parts))
    return Row(label, source.strategy, source.replay, source.l2sp,
               posterior=posterior[0], posterior_args=methods[posterior[0]], source=source.label)


def _method_args(text: str, part: StrategySpec) -> dict[str, Any]:
    method = BENCH_METHODS[part.name]
    unknown = sorted(set(part.kwargs) - set(method.defaults))
    if unknown and part.name != "merge":  # merge passes its options on to the merge function
        raise ValueError(
            f"bench row {text!r}: {part.name} takes {', '.join(method.defaults)}, not {', '.join(unknown)}"
        )
    return {**method.defaults, **part.kwargs}


def slug(text: str) -> str:
    """A file-name-safe form of a label or task name."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")
