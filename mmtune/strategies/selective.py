"""Selective tuning: train a chosen subset of the existing weights, freeze the rest.

``apply_strategy`` freezes every parameter first; each selective strategy here only unfreezes
its set, so ``top(k=2)+projector`` trains the union. Following Huang et al. (2025), Top-ST and
Last-ST (``top``, ``last``) train only the top decoder layers: the final norm and the lm head
stay frozen (add them with ``+norms`` or pick ``llm`` if wanted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.models.generic import unwrap
from mmtune.strategies.registry import register_strategy
from mmtune.strategies.targets import (
    LLM_GROUPS,
    check_group_names,
    expand_groups,
    is_norm,
    plain_named_parameters,
)

Select = Callable[[str, nn.Parameter], bool]


def unfreeze(model: nn.Module, select: Select, what: str) -> nn.Module:
    """Set requires_grad on the parameters ``select`` picks; error if it picks none."""
    hits = 0
    for name, p in plain_named_parameters(model):
        if select(name, p):
            p.requires_grad_(True)
            hits += 1
    if hits == 0:
        raise ValueError(f"{what} selects no parameters in {type(model).__name__}")
    return model


@dataclass
class NoArgs:
    """Strategies that take no arguments."""


@dataclass
class LayerCount:
    k: int = field(default=4, metadata={"help": "number of decoder layers to train"})

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")


@dataclass
class LayerRange:
    start: int = field(metadata={"help": "first decoder layer trained (0-based)"})
    end: int = field(metadata={"help": "layer after the last one trained (exclusive, like range())"})

    def __post_init__(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.start, self.end)):
            raise ValueError(f"start and end must be integers, got start={self.start!r} end={self.end!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"need 0 <= start < end, got start={self.start} end={self.end}")


@dataclass
class GroupSelection:
    groups: tuple[str, ...] = field(
        default=("llm",), metadata={"help": "groups to search: llm, vision, projector (join with |)"}
    )

    def __post_init__(self) -> None:
        check_group_names(self.groups)


def _groups(*names: str) -> Callable[[nn.Module, ModelGroups, NoArgs], nn.Module]:
    def apply(model: nn.Module, groups: ModelGroups, cfg: NoArgs) -> nn.Module:
        return unfreeze(model, lambda n, p: groups.group_of(n) in names, f"groups {', '.join(names)}")

    return apply


register_strategy("full", "selective", "train every parameter (Full-ST)", NoArgs)(
    lambda model, groups, cfg: unfreeze(model, lambda n, p: True, "full")
)
register_strategy(
    "llm", "selective", "train the whole language model: embeddings, layers, norm, lm head", NoArgs
)(_groups(*LLM_GROUPS))
register_strategy("vision", "selective", "train the vision encoder only", NoArgs)(_groups("vision_encoder"))
register_strategy("projector", "selective", "train the vision-language projector only", NoArgs)(
    _groups("projector")
)


def _layers(model: nn.Module, groups: ModelGroups, start: int, end: int, what: str) -> nn.Module:
    if start < 0 or end > groups.num_layers:
        raise ValueError(f"{what}: the model has only {groups.num_layers} decoder layers")

    def select(name: str, p: nn.Parameter) -> bool:
        i = groups.layer_index(name)
        return i is not None and start <= i < end

    return unfreeze(model, select, what)


@register_strategy("top", "selective", "train the top k decoder layers (Top-ST)", LayerCount)
def top(model: nn.Module, groups: ModelGroups, cfg: LayerCount) -> nn.Module:
    return _layers(model, groups, groups.num_layers - cfg.k, groups.num_layers, f"top(k={cfg.k})")


@register_strategy("bottom", "selective", "train the bottom k decoder layers", LayerCount)
def bottom(model: nn.Module, groups: ModelGroups, cfg: LayerCount) -> nn.Module:
    return _layers(model, groups, 0, cfg.k, f"bottom(k={cfg.k})")


@register_strategy("last", "selective", "train the last decoder layer only (Last-ST, = top(k=1))", NoArgs)
def last(model: nn.Module, groups: ModelGroups, cfg: NoArgs) -> nn.Module:
    return top(model, groups, LayerCount(k=1))


@register_strategy("layers", "selective", "train decoder layers start..end-1", LayerRange)
def layers(model: nn.Module, groups: ModelGroups, cfg: LayerRange) -> nn.Module:
    return _layers(model, groups, cfg.start, cfg.end, f"layers(start={cfg.start}, end={cfg.end})")


@register_strategy("norms", "selective", "train LayerNorm/RMSNorm weights only (LN-tuning)", GroupSelection)
def norms(model: nn.Module, groups: ModelGroups, cfg: GroupSelection) -> nn.Module:
    wanted = expand_groups(cfg.groups)
    params = {
        id(p)
        for name, m in unwrap(model).named_modules()
        if is_norm(m) and groups.group_of(name) in wanted
        for p in m.parameters(recurse=False)
    }
    return unfreeze(model, lambda n, p: id(p) in params, f"norms(groups={'|'.join(cfg.groups)})")


@register_strategy("bias", "selective", "train bias terms only (BitFit)", GroupSelection)
def bias(model: nn.Module, groups: ModelGroups, cfg: GroupSelection) -> nn.Module:
    wanted = expand_groups(cfg.groups)
    what = f"bias(groups={'|'.join(cfg.groups)})"
    try:
        return unfreeze(model, lambda n, p: n.endswith(".bias") and groups.group_of(n) in wanted, what)
    except ValueError as e:
        # Llama-style LLMs have no biases at all; say so instead of silently training nothing.
        raise ValueError(f"{e}: these groups have no bias terms; try bias(groups=vision|projector)") from None
