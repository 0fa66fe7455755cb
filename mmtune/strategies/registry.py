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
from mmtune.strategies.spec import StrategySpec, format_spec, parse_spec

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
    """A registered strategy and what it can do, declared once: ``saves`` is "full" when its
    result is plain model weights (a full checkpoint), "delta" when it is kept apart from the base
    (PEFT adapter, added modules); ``mergeable`` when its update folds into plain weights."""

    info: StrategyInfo
    config_cls: type
    apply: ApplyFn
    uses_peft: bool
    saves: str = "delta"
    mergeable: bool = True

    def arg_help(self) -> dict[str, str]:
        return arg_help(self.config_cls)


STRATEGIES: Registry[StrategyEntry] = Registry(
    "strategy",
    builtins=("mmtune.strategies.selective", "mmtune.strategies.additive",
              "mmtune.strategies.llama_adapter", "mmtune.strategies.reparam"),
)


def register_strategy(
    name: str, paradigm: str, description: str, config_cls: type, *, uses_peft: bool = False,
    mergeable: bool = True,
) -> Callable[[ApplyFn], ApplyFn]:
    """Decorator registering ``apply(model, groups, config)`` under ``name``. Selective strategies
    save full checkpoints, the others deltas on the base; ``mergeable=False`` for strategies that add
    computation no plain weight can express (adapters, soft prompts)."""
    if paradigm not in PARADIGMS:
        raise ValueError(f"strategy {name!r}: paradigm {paradigm!r} is not one of {PARADIGMS}")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"strategy {name!r}: config_cls must be a dataclass")

    def deco(fn: ApplyFn) -> ApplyFn:
        saves = "full" if paradigm == "selective" else "delta"
        STRATEGIES.register(name, StrategyEntry(StrategyInfo(name, paradigm, description), config_cls, fn, uses_peft,
                                                saves, mergeable))
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


@dataclass(frozen=True)
class ResolvedStrategy:
    """A spec parsed and validated once, its parts in application order (see the note on PARADIGMS);
    ``apply_strategy``, ``save_tuned`` and ``load_tuned`` take it as it is."""

    spec: str  # canonical text, as written back into checkpoints and reports
    parts: tuple[tuple[StrategySpec, StrategyEntry, Any], ...]

    def __str__(self) -> str:
        return self.spec

    @property
    def saves(self) -> str:
        """"full" when every part's result is plain weights, else "delta"."""
        return "full" if all(e.saves == "full" for _, e, _ in self.parts) else "delta"

    @property
    def mergeable(self) -> bool:
        return all(e.mergeable for _, e, _ in self.parts)

    def unmergeable(self) -> list[str]:
        return [str(s) for s, e, _ in self.parts if not e.mergeable]


def resolve(text: str | ResolvedStrategy) -> ResolvedStrategy:
    """Parse and validate a spec (a resolved one is returned as it is)."""
    if isinstance(text, ResolvedStrategy):
        return text
    specs = parse_spec(text)
    parts = [(s, get_strategy(s.name), build_config(s)) for s in specs]
    if sum(e.uses_peft for _, e, _ in parts) > 1:
        names = [s.name for s, e, _ in parts if e.uses_peft]
        raise ValueError(f"strategy {text!r}: at most one PEFT strategy per spec, got {', '.join(names)}")
    # Selections may repeat (``layers(start=0, end=2)+layers(start=6, end=8)``); attached modules may not.
    names = [s.name for s, e, _ in parts if e.info.paradigm != "selective"]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"strategy {text!r}: {', '.join(dupes)} given more than once; merge their arguments")
    ordered = sorted(parts, key=lambda p: (not p[1].uses_peft, PARADIGMS.index(p[1].info.paradigm)))
    return ResolvedStrategy(format_spec(specs), tuple(ordered))
