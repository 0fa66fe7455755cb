"""Resolving a model's groups: its registered family by ``config.model_type``, else detection.

Detection tries the module names the field's image-text models commonly use, so an unlisted
family still works, or fails with an error that names each group it could not find.
"""
from __future__ import annotations

from torch import nn

from mmtune.models.family import (
    GROUPS,
    GroupNotFoundError,
    ModelFamily,
    ModelGroups,
    families,
)

# Containers the groups may sit in: transformers >= 4.52 nests them under ``model.``.
_ROOTS = ("model.", "")
_VISION = ("vision_tower", "visual", "vision_model", "vision_encoder")
_PROJECTOR = ("multi_modal_projector", "connector", "mm_projector", "projector")
_NESTED_PROJECTOR = ("merger",)  # Qwen2-VL style: the projector lives inside the vision tower
# ``language_model.model`` covers older layouts where the language model is a *ForCausalLM.
_LANGUAGE = ("language_model", "text_model", "language_model.model", "model")
_LAYERS = ("layers", "h", "decoder.layers")
_NORM = ("norm", "final_layernorm", "ln_f")
_EMBEDDINGS = ("embed_tokens", "wte")
_LM_HEAD = ("lm_head", "language_model.lm_head")


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (group paths are relative to it)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def resolve_groups(model: nn.Module) -> ModelGroups:
    """Map ``model``'s modules to mmtune's groups; raises GroupNotFoundError naming what is missing."""
    base = unwrap(model)
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    family = family_for_model_type(model_type)
    if family is None:
        family = detect_family(base, model_type)
    else:
        missing = [g for g, p in family.paths().items() if not _exists(base, p)]
        if missing:
            tried = "; ".join(f"{g} at {family.paths()[g]!r}" for g in missing)
            raise GroupNotFoundError(
                f"{type(base).__name__} (model_type {model_type!r}) does not match its registered family "
                f"{family.name!r}: missing {tried}. Fix the paths in mmtune/models/{family.name}.py "
                "for this transformers version."
            )
    layers = base.get_submodule(family.language_layers)
    if not isinstance(layers, (nn.ModuleList, nn.Sequential)):
        raise GroupNotFoundError(
            f"language_layers {family.language_layers!r} of {type(base).__name__} is a "
            f"{type(layers).__name__}, not a list of decoder layers; register a family with the right path"
        )
    return ModelGroups(family=family, paths=family.paths(), num_layers=len(layers))


def family_for_model_type(model_type: str | None) -> ModelFamily | None:
    """The registered family that handles ``model_type``, if any."""
    for family in families().values():
        if model_type in family.model_types:
            return family
    return None


def detect_family(model: nn.Module, model_type: str | None) -> ModelFamily:
    """Build a family for an unlisted model from common module names."""
    found: dict[str, str | None] = {}
    tried: dict[str, list[str]] = {}

    def first(group: str, candidates: list[str]) -> str | None:
        tried[group] = candidates
        found[group] = next((c for c in candidates if _exists(model, c)), None)
        return found[group]

    vision = first("vision_encoder", [r + v for r in _ROOTS for v in _VISION])
    nested = [f"{vision}.{p}" for p in _NESTED_PROJECTOR] if vision else []
    first("projector", [r + p for r in _ROOTS for p in _PROJECTOR] + nested)
    languages = [r + lang for r in _ROOTS for lang in _LANGUAGE]
    layer_paths = [f"{lang}.{layers}" for lang in languages for layers in _LAYERS]
    layers = first("language_layers", layer_paths)
    language = next((lang for lang in languages if layers and layers.startswith(lang + ".")), None)
    under = [language] if language else languages
    first("language_norm", [f"{lang}.{n}" for lang in under for n in _NORM])
    first("embeddings", [f"{lang}.{e}" for lang in under for e in _EMBEDDINGS])
    first("lm_head", [r + h for r in _ROOTS for h in _LM_HEAD])

    missing = [g for g in GROUPS if found.get(g) is None]
    if missing:
        details = "; ".join(f"{g} (tried {', '.join(tried[g])})" for g in missing)
        raise GroupNotFoundError(
            f"{type(model).__name__} (model_type {model_type!r}) is not a registered family and generic "
            f"detection could not find: {details}. Register a ModelFamily for {model_type!r} "
            "(one small module like mmtune/models/llava.py)."
        )
    return ModelFamily(
        name=f"generic:{model_type}",
        model_types=(model_type,) if model_type else (),
        description=f"detected by common module names ({type(model).__name__})",
        **{g: found[g] for g in GROUPS},
    )


def _exists(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True
