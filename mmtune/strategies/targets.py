"""Group selectors used in strategy arguments (``groups=llm|projector``) and the modules they name.

``llm`` is the whole language model (embeddings, decoder layers, final norm, lm head); ``vision``
the vision encoder; ``projector`` the vision-language interface; every ModelGroups name
(``language_layers``, ``lm_head``, ...) is accepted as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch import nn

from mmtune.models.family import GROUPS, ModelGroups
from mmtune.models.generic import unwrap

LLM_GROUPS = ("embeddings", "language_layers", "language_norm", "lm_head")
ALIASES: dict[str, tuple[str, ...]] = {
    "llm": LLM_GROUPS,
    "vision": ("vision_encoder",),
    **{g: (g,) for g in GROUPS},
}


def check_group_names(names: Iterable[str], option: str = "groups") -> None:
    """Raise naming the bad selector and the valid ones (for config ``__post_init__``)."""
    bad = [n for n in names if n not in ALIASES]
    if bad:
        raise ValueError(
            f"{option}: unknown group(s) {', '.join(map(repr, bad))}; valid: {', '.join(ALIASES)}"
        )


def expand_groups(names: Iterable[str]) -> set[str]:
    """Selectors -> ModelGroups group names."""
    names = list(names)
    check_group_names(names)
    return {g for n in names for g in ALIASES[n]}


def is_norm(module: nn.Module) -> bool:
    """LayerNorm / RMSNorm of any family (LlamaRMSNorm, Qwen2RMSNorm, GemmaRMSNorm, ...)."""
    cls = type(module).__name__
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or cls.endswith(("RMSNorm", "LayerNorm"))


def linear_targets(model: nn.Module, groups: ModelGroups, selectors: Iterable[str]) -> list[str]:
    """Exact names of the nn.Linear modules a PEFT method should wrap for these selectors.

    Exact names (not a suffix like ``q_proj``) are what keeps LoRA off the vision tower, whose
    attention also has ``q_proj``. The lm head is targeted only when named explicitly
    (``groups=llm|lm_head``): the usual practice is to leave the output head out.
    """
    selectors = list(selectors)
    wanted = expand_groups(selectors)
    if "lm_head" not in selectors:
        wanted.discard("lm_head")
    names = [n for n, m in _named_modules(model) if isinstance(m, nn.Linear) and groups.group_of(n) in wanted]
    if not names:
        raise ValueError(
            f"groups={'|'.join(selectors)} holds no nn.Linear modules in {type(model).__name__}; "
            "choose other groups (llm, vision, projector)"
        )
    return names


def _named_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    # Modules PEFT or mmtune already inserted (lora_A, adapters) are never targets themselves.
    for name, module in model.named_modules():
        if not any(part.startswith(("lora_", "mmtune_", "base_layer")) for part in name.split(".")):
            yield name, module


def plain_named_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Parameters named as in the unwrapped transformers model, so ModelGroups paths apply.

    PEFT prompt-learning wrappers prefix names with ``base_model.`` only (LoRA-style ones with
    ``base_model.model.``); naming through the base model handles both. Parameters the wrapper
    itself owns (the soft prompt) keep their wrapper names and fall in the "other" group.
    """
    base = unwrap(model)
    names = {id(p): n for n, p in base.named_parameters()}
    for name, p in model.named_parameters():
        yield names.get(id(p), name), p
