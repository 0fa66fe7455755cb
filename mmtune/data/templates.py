"""Instruction templates for benchmark adaptation: turn VQA / caption / choice sets into prompts.

Pools of differently worded instructions (drawn per sample, seeded) keep a tuned model from
over-fitting one wording; the short-answer and multiple-choice suffixes are
LLaVA-1.5's, so answers come back in a form the eval parsers expect.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass

from mmtune.registry import Registry

SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
CHOICE_SUFFIX = "Answer with the option's letter from the given choices directly."
YES_NO_SUFFIX = "Answer yes or no."


@dataclass(frozen=True)
class TemplatePool:
    """Wordings of one instruction (``{question}`` marks the question) and a fixed suffix."""

    name: str
    templates: tuple[str, ...]
    suffix: str = ""


_POOLS: Registry[TemplatePool] = Registry("template pool")


def register_pool(pool: TemplatePool) -> TemplatePool:
    return _POOLS.register(pool.name, pool)


def get_pool(name: str) -> TemplatePool:
    return _POOLS.lookup(name)


def list_pools() -> list[str]:
    return sorted(_POOLS)


def format_choices(choices: list[str]) -> str:
    """``["cat", "dog"]`` -> ``"A. cat\\nB. dog"``."""
    if len(choices) > len(string.ascii_uppercase):
        raise ValueError(f"{len(choices)} choices is more than the {len(string.ascii_uppercase)} option letters")
    return "\n".join(f"{letter}. {choice}" for letter, choice in zip(string.ascii_uppercase, choices))


def apply_template(
    pool: str | TemplatePool,
    question: str = "",
    rng: random.Random | int = 0,
    *,
    choices: list[str] | None = None,
) -> str:
    """One instruction from ``pool`` for ``question`` (+ lettered ``choices``) and the pool's suffix.

    ``rng`` is a ``random.Random`` (advanced by one draw) or a seed, so a dataset built with
    one seed always gets the same wordings.
    """
    pool = get_pool(pool) if isinstance(pool, str) else pool
    rng = random.Random(rng) if isinstance(rng, int) else rng
    text = rng.choice(pool.templates).format(question=question.strip())
    if choices:
        text = f"{text}\n{format_choices(choices)}"
    return f"{text}\n{pool.suffix}" if pool.suffix else text


register_pool(TemplatePool(
    "vqa_short",
    ("{question}", "Question: {question}", "Look at the image and answer: {question}",
     "Based on the image, {question}", "{question} Look carefully at the picture."),
    SHORT_ANSWER_SUFFIX,
))
register_pool(TemplatePool(
    "caption",
    ("Describe the image briefly.", "Write a short caption for this image.",
     "Give a one-sentence description of the picture.", "What does this image show? Answer in one sentence.",
     "Summarize the scene in the image."),
))
register_pool(TemplatePool(
    "multiple_choice",
    ("{question}", "Question: {question}", "Based on the image, choose the right option. {question}"),
    CHOICE_SUFFIX,
))
register_pool(TemplatePool(
    "yes_no",
    ("{question}", "Look at the image. {question}", "Is the following true of the image? {question}"),
    YES_NO_SUFFIX,
))
