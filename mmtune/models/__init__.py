"""Model families, group resolution, loading and tiny test models."""
# Importing a family module registers it; ``family.families()`` imports
# ``_register_builtin_families`` so every built-in family is registered before it answers.
from mmtune.models import idefics3, llava, llava_next, paligemma, qwen2_vl
from mmtune.models.family import (
    GROUPS,
    GroupNotFoundError,
    ModelFamily,
    ModelGroups,
    families,
    get_family,
    register_family,
)
from mmtune.models.generic import resolve_groups, unwrap
from mmtune.models.loading import LoadedModel, load_model

_register_builtin_families = (idefics3, llava, llava_next, paligemma, qwen2_vl)

__all__ = [
    "GROUPS",
    "GroupNotFoundError",
    "LoadedModel",
    "ModelFamily",
    "ModelGroups",
    "families",
    "get_family",
    "load_model",
    "register_family",
    "resolve_groups",
    "unwrap",
]
