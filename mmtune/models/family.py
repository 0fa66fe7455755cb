"""Model families: declarative maps from a checkpoint's module tree to mmtune's groups.

A family names, as dotted module paths, where each group lives. Strategies act on groups, never on
family-specific classes, so adding a family is one small module + one ``register_family`` call.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

from mmtune.registry import Registry

# The groups every family resolves. ``language_layers`` is an indexable ModuleList of decoder layers.
GROUPS = ("vision_encoder", "projector", "embeddings", "language_layers", "language_norm", "lm_head")


@dataclass(frozen=True)
class ModelFamily:
    """Where a family keeps each group, as dotted paths from the top-level model."""

    name: str
    model_types: tuple[str, ...]  # values of ``config.model_type`` this family handles
    vision_encoder: str
    projector: str
    embeddings: str
    language_layers: str
    language_norm: str
    lm_head: str
    description: str = ""
    # How the family writes boxes in text for grounding: "norm1" ([0,1] floats), "norm1000"
    # (integers 0..1000, Qwen2-VL), "pixel" (on the original image) or "resized_pixel" (on the image
    # as the processor resized it, Qwen2.5-VL); keys of eval.metrics.grounding.BOX_FORMATS.
    box_format: str = "norm1"
    # Parameters or modules outside the group paths that still belong to a group, as
    # (dotted path, group) pairs: e.g. LLaVA-NeXT's ``model.image_newline`` trains with the projector.
    extra_paths: tuple[tuple[str, str], ...] = ()
    # Images one prompt may hold (None: any number, interleaved with text); k-shot evaluation needs k + 1.
    images_per_prompt: int | None = None

    def paths(self) -> dict[str, str]:
        return {g: getattr(self, g) for g in GROUPS}


_FAMILIES: Registry[ModelFamily] = Registry("model family")


def register_family(family: ModelFamily) -> ModelFamily:
    return _FAMILIES.register(family.name, family)


def families() -> dict[str, ModelFamily]:
    from mmtune.models import _register_builtin_families  # noqa: F401  (import registers)

    return dict(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    families()  # registers the built-in families
    return _FAMILIES.lookup(name)


class GroupNotFoundError(LookupError):
    """A family's declared (or detected) module path does not exist in the model."""


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as e:
        raise GroupNotFoundError(f"module {path!r} not found in {type(model).__name__}") from e


@dataclass
class ModelGroups:
    """A family resolved against one model instance: group -> module path, layer count."""

    family: ModelFamily
    paths: dict[str, str]
    num_layers: int
    _prefixes: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # Longest prefix first so nested paths (e.g. projector inside the vision tower, as in
        # Qwen2-VL's ``visual.merger``) win over their parents.
        pairs = [(p, g) for g, p in self.paths.items() if p] + list(self.family.extra_paths)
        self._prefixes = sorted(pairs, key=lambda x: -len(x[0]))

    def group_of(self, param_name: str) -> str:
        """The group a parameter (or module) name belongs to, or ``"other"``."""
        name = _strip_wrappers(param_name)
        for prefix, group in self._prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return group
        return "other"

    def layer_index(self, param_name: str) -> int | None:
        """Decoder-layer index of a parameter inside ``language_layers``, else None."""
        name = _strip_wrappers(param_name)
        prefix = self.paths["language_layers"] + "."
        if not name.startswith(prefix):
            return None
        head = name[len(prefix):].split(".", 1)[0]
        return int(head) if head.isdigit() else None

    def module(self, model: nn.Module, group: str) -> nn.Module:
        return get_submodule(model, self.paths[group])

    def named_parameters(self, model: nn.Module, groups: Iterable[str]) -> Iterable[tuple[str, nn.Parameter]]:
        wanted = set(groups)
        for name, p in model.named_parameters():
            if self.group_of(name) in wanted:
                yield name, p


_WRAPPER_PREFIXES = ("base_model.model.", "_orig_mod.", "module.")


def _strip_wrappers(name: str) -> str:
    """Names inside PEFT (LoRA-style) / torch.compile / DDP wrappers map back to the plain model's names.

    PEFT prompt-learning wrappers name the model ``base_model.`` (no ``.model``); strategies name
    parameters through the unwrapped model instead (``strategies.targets.plain_named_parameters``).
    """
    changed = True
    while changed:
        changed = False
        for w in _WRAPPER_PREFIXES:
            if name.startswith(w):
                name, changed = name[len(w):], True
    # PEFT inserts ``.base_layer`` under wrapped linears; the group is decided by the prefix anyway.
    return name
