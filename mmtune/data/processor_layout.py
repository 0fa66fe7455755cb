"""What some processors do to the text besides expanding image placeholders, keyed by class.

The collator locates answers in characters of the rendered chat text; a processor that inserts
characters of its own before tokenizing (PaliGemma adds BOS after the last image) would shift
them. Each entry here declares such insertions, and whether the family marks its bidirectional
prefix with ``token_type_ids`` (0 = prefix, 1 = causal answer), which the collator must set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from transformers import ProcessorMixin

from mmtune.registry import Registry

Insertions = Callable[[ProcessorMixin, str], list[tuple[int, int]]]  # -> [(position, n_chars)]


def _no_insertions(processor: ProcessorMixin, text: str) -> list[tuple[int, int]]:
    return []


@dataclass(frozen=True)
class ProcessorLayout:
    insertions: Insertions = _no_insertions
    prefix_lm: bool = False


LAYOUTS: Registry[ProcessorLayout] = Registry("processor layout")


def register_processor_layout(processor_class: str, layout: ProcessorLayout) -> None:
    LAYOUTS.register(processor_class, layout)


def layout_of(processor: ProcessorMixin) -> ProcessorLayout:
    """The layout registered for the processor's class or its nearest registered base class."""
    for cls in type(processor).__mro__:
        if cls.__name__ in LAYOUTS:
            return LAYOUTS[cls.__name__]
    return ProcessorLayout()


def shift_position(pos: int, insertions: list[tuple[int, int]]) -> int:
    """Where character ``pos`` lands after ``insertions`` (made at positions of the original text)."""
    return pos + sum(n for at, n in insertions if at <= pos)


def _paligemma_insertions(processor: ProcessorMixin, text: str) -> list[tuple[int, int]]:
    # Mirrors PaliGemmaProcessor.prepare_inputs_layout: BOS right after the last image token
    # (found with rfind, so a text without one gets it at len(image_token) - 1, as there).
    at = text.rfind(processor.image_token) + len(processor.image_token)
    return [(at, len(processor.tokenizer.bos_token))]


register_processor_layout("PaliGemmaProcessor", ProcessorLayout(_paligemma_insertions, prefix_lm=True))
