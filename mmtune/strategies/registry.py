"""The strategy registry: name -> (paradigm, description, config dataclass, apply function).

A strategy is one function ``apply(model, groups, config) -> nn.Module`` plus a config dataclass
validated in ``__post_init__`` (PEFT style). Adding one is one decorated function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.registry import Registry, arg_help, config_from_kwargs
from mmtune.strategies.spec import StrategySpec, parse_spec

# Order of application: the PEFT strategy first (its wrapper re-freezes every parameter it does
# not own), then hand-written modules, then selections, so ``lora+projector`` or ``ia3+adapter``
# keep everything trainable whatever order the user wrote.
PARADIGMS = ("reparameterization", "additive", "selective")

ApplyFn = Callable[[nn.Module, ModelGroups, Any], nn.Module]


@dataclass(frozen=True)
class StrategyInfo:
    """What ``mmtune strategies`` lists."""

    name: str
    paradigm: str
    description: str


@dataclass(frozen=True)
class StrategyEntry:
    info: StrategyInfo
    config_cls: type
    apply: ApplyFn
    uses_peft: bool

    def arg_help(self) -> dict[str, str]:
        return arg_help(self.config_cls)


STRATEGIES: Registry[StrategyEntry] = Registry(
    "strategy",
    builtins=("mmtune.strategies.selective", "mmtune.strategies.additive",
              "mmtune.strategies.llama_adapter", "mmtune.strategies.reparam"),
)


def register_strategy(
    name: str, paradigm: str, description: str, config_cls: type, *, uses_peft: bool = False
) -> Callable[[ApplyFn], ApplyFn]:
    """Decorator registering ``apply(model, groups, config)`` under ``name``."""
    if paradigm not in PARADIGMS:
        raise ValueError(f"strategy {name!r}: paradigm {paradigm!r} is not one of {PARADIGMS}")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"strategy {name!r}: config_cls must be a dataclass")

    def deco(fn: ApplyFn) -> ApplyFn:
        STRATEGIES.register(name, StrategyEntry(StrategyInfo(name, paradigm, description), config_cls, fn, uses_peft))
        return fn

    return deco


def list_strategies() -> list[StrategyInfo]:
    """Every registered strategy, grouped by paradigm then name."""
    entries = sorted(STRATEGIES.values(), key=lambda e: (PARADIGMS.index(e.info.paradigm), e.info.name))
    return [e.info for e in entries]


def get_strategy(name: str) -> StrategyEntry:
    return STRATEGIES.lookup(name)


def build_config(spec: StrategySpec) -> Any:
    """The validated config dataclass for one spec part; unknown args name the valid ones."""
    return config_from_kwargs(f"strategy {str(spec)!r}", get_strategy(spec.name).config_cls, spec.kwargs)


def resolve(text: str) -> list[tuple[StrategySpec, StrategyEntry, Any]]:
    """Parse and validate a spec; parts come back in application order (see the note on PARADIGMS)."""
    parts = [(s, get_strategy(s.name), build_config(s)) for s in parse_spec(text)]
    if sum(e.uses_peft for _, e, _ in parts) > 1:
        names = [s.name for s, e, _ in parts if e.uses_peft]
        raise ValueError(f"strategy {text!r}: at most one PEFT strategy per spec, got {', '.join(names)}")
    # Selections may repeat (``layers(start=0, end=2)+layers(start=6, end=8)``); attached modules may not.
    names = [s.name for s, e, _ in parts if e.info.paradigm != "selective"]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"strategy {text!r}: {', '.join(dupes)} given more than once; merge their arguments")
    return sorted(parts, key=lambda p: (not p[1].uses_peft, PARADIGMS.index(p[1].info.paradigm)))
