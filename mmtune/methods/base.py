"""Anti-forgetting methods as one concept: each is a registered entry that declares its phase.

- *data* methods change what is trained on (replay of seen data): ``apply(samples, seen, seed)``; ICL
  tuning (``icl``) and CoT tuning (``cot``) are data methods too, not remedies for forgetting, so that a
  bench row measures what they cost (``lora+cot``);
- *loss* methods add a term to the training objective (L2-SP, EWC, MAS, LwF): a ``LossTerm`` set up
  once before step 0 and asked for its penalty at every step;
- *posterior* methods act on finished weights (WiSE-FT, task arithmetic, TIES, DARE):
  ``apply(base_state_dict, tuned_state_dicts)``.

A method is one module of this package (found there, no list to edit): a config dataclass
(fields with ``help``, checks in ``__post_init__``) and a factory decorated with ``register_method``.
Its spec uses the strategy syntax, so a training config writes
``methods: [replay(fraction=0.2), ewc(weight=100)]`` and a bench row ``full+ewc(weight=100)``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from mmtune.data.sample import Sample
from mmtune.registry import Registry, arg_help, config_from_kwargs
from mmtune.strategies.spec import StrategySpec, parse_spec

PHASES = {
    "data": "changes what is trained on",
    "loss": "adds a term to the training loss",
    "posterior": "acts on the finished weights",
}
StateDict = dict[str, torch.Tensor]


class DataMethod(Protocol):
    def apply(self, samples: Sequence[Sample], seen: Sequence[Sample], seed: int) -> list[Sample]: ...


@dataclass
class LossContext:
    """What a loss term may use when it is set up: the model about to train (its trainable
    parameters still at their initial values) and batches of seen-task data on the model's
    device, collated as training collates (``seen_batches`` is empty when no seen data is given)."""

    model: nn.Module
    seen_batches: Callable[[], Iterator[dict[str, torch.Tensor]]]


class LossTerm(Protocol):
    def setup(self, context: LossContext) -> None: ...

    def penalty(self, model: nn.Module, inputs: dict[str, torch.Tensor], outputs: Any) -> torch.Tensor: ...


class PosteriorMethod(Protocol):
    #: "one": acts on one finished run (WiSE-FT); "targets": on every target's run of a row (merging)
    runs: str

    def apply(self, base: StateDict, tuned: Sequence[StateDict]) -> StateDict: ...


@dataclass(frozen=True)
class MethodEntry:
    name: str
    phase: str
    description: str
    config_cls: type
    factory: Callable[[Any], Any]
    needs_seen_data: bool = False

    def arg_help(self) -> dict[str, str]:
        return arg_help(self.config_cls)

    def defaults(self) -> dict[str, Any]:
        return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(self.config_cls)}


# Every module of mmtune.methods is imported on first use: a new method is one new module.
METHODS: Registry[MethodEntry] = Registry("method", builtins=("mmtune.methods.*",))


def register_method(name: str, phase: str, description: str, config_cls: type, *,
                    needs_seen_data: bool = False) -> Callable[[Callable], Callable]:
    """Decorator registering ``factory(config) -> method object`` under ``name``."""
    if phase not in PHASES:
        raise ValueError(f"method {name!r}: phase {phase!r} is not one of {', '.join(PHASES)}")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"method {name!r}: config_cls must be a dataclass")

    def deco(factory: Callable) -> Callable:
        METHODS.register(name, MethodEntry(name, phase, description, config_cls, factory, needs_seen_data))
        return factory

    return deco


@dataclass(frozen=True)
class Method:
    """One resolved method: its spec, registry entry and validated config. ``build()`` makes the
    phase object; ``label`` is the canonical spec text used in ids and reports."""

    spec: StrategySpec
    entry: MethodEntry
    config: Any

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def phase(self) -> str:
        return self.entry.phase

    @property
    def label(self) -> str:
        return str(self.spec)

    def build(self) -> Any:
        return self.entry.factory(self.config)


def is_method(name: str) -> bool:
    return name in METHODS


def resolve_method(spec: StrategySpec) -> Method:
    entry = METHODS.lookup(spec.name)
    return Method(spec, entry, config_from_kwargs(f"method {str(spec)!r}", entry.config_cls, spec.kwargs))


def resolve_methods(specs: str | Sequence[str | StrategySpec]) -> list[Method]:
    """Resolve ``"replay(fraction=0.2)+ewc"`` or a list of specs; one method of each name, at most one
    posterior method (they act on the same finished weights in turn, which is not defined)."""
    parts: list[StrategySpec] = []
    for item in [specs] if isinstance(specs, str) else specs:
        parts += [item] if isinstance(item, StrategySpec) else parse_spec(item)
    methods = [resolve_method(p) for p in parts]
    names = [m.name for m in methods]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"methods {', '.join(map(str, parts))}: {', '.join(dupes)} given more than once")
    posterior = [m.label for m in methods if m.phase == "posterior"]
    if len(posterior) > 1:
        raise ValueError(f"methods {', '.join(posterior)}: use one posterior method per run")
    return methods


def list_methods() -> list[MethodEntry]:
    """Every registered method, by phase (data, loss, posterior) then name."""
    order = list(PHASES)
    return sorted(METHODS.values(), key=lambda e: (order.index(e.phase), e.name))


def check_number(name: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
                 integer: bool = False) -> None:
    """Refuse a method argument that is not a finite number (an integer if ``integer``) in
    ``[low, high]``, naming it."""
    if integer and not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) and math.isfinite(high) else \
            f" >= {low:g}" if math.isfinite(low) else ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")


def gradient_importance(model: nn.Module, batches: Iterator[dict[str, torch.Tensor]], max_batches: int, *,
                        objective: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor],
                        statistic: Callable[[torch.Tensor], torch.Tensor], method: str) -> dict[str, torch.Tensor]:
    """Per trainable parameter, the mean over up to ``max_batches`` batches of ``statistic`` (e.g. the
    square) of the gradient of ``objective(outputs, batch)``: how much the seen data needs each
    weight. The model is in eval mode meanwhile (no dropout) and keeps no gradient afterwards."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training, n_batches = model.training, 0
    model.eval()
    try:
        for batch in batches:
            if n_batches == max_batches:
                break
            model.zero_grad(set_to_none=True)
            objective(model(**batch), batch).backward()
            for n, p in params.items():
                if p.grad is not None:
                    total[n] += statistic(p.grad.detach().float())
            n_batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if not n_batches:
        raise ValueError(f"{method} needs seen-task data to weigh the parameters; give seen data "
                         "(seen_data: in a train config; the bench passes its seen sets)")
    return {n: t / n_batches for n, t in total.items()}


@dataclass
class AnchorConfig:
    """Arguments of an importance-weighted pull (EWC, MAS); a method subclasses it for its own
    defaults and help."""

    weight: float = field(default=1.0, metadata={"help": "lambda: strength of the importance-weighted pull"})
    batches: int = field(default=8, metadata={"help": "seen-data batches that estimate the importance"})

    def __post_init__(self) -> None:
        check_number("weight", self.weight, low=0)
        check_number("batches", self.batches, low=1, integer=True)


class WeightedAnchor:
    """A loss term ``scale * sum_i omega_i (w_i - w0_i)^2``: a pull toward the weights before
    tuning, each weight by its importance ``omega``, which a subclass estimates in ``estimate``."""

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)
        self.anchors: dict[str, torch.Tensor] = {}
        self.importance: dict[str, torch.Tensor] = {}

    def estimate(self, context: LossContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def setup(self, context: LossContext) -> None:
        self.anchors = trainable_snapshot(context.model)
        self.importance = self.estimate(context)

    def penalty(self, model: nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        total = sum((self.importance[n] * (p - self.anchors[n]).pow(2)).sum()
                    for n, p in model.named_parameters() if n in self.anchors)
        return self.scale * total


def trainable_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable parameter, the anchor L2-SP and EWC pull towards."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
