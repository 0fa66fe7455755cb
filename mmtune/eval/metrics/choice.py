"""Multiple-choice answer extraction (ScienceQA style); the rule that fired is always returned."""
from __future__ import annotations

import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")


def extract_choice(answer: str, choices: Sequence[str]) -> tuple[str | None, str]:
    """The chosen letter (A, B, ...) and the rule that found it, or ``(None, "unparsed")``.

    Rules, first match wins: ``bare`` ("B", "b."), ``letter_prefix`` ("B. cat", "B) cat",
    "B: cat"), ``parenthesized`` ("(B)" anywhere), ``answer_is`` ("The answer is B"),
    ``option_text`` (the answer equals one option's text, or contains exactly one of them).
    Letters outside the given choices never match.
    """
    valid = LETTERS[: len(choices)]
    text = answer.strip()
    m = re.fullmatch(r"\(?([A-Za-z])\)?[.):]?", text)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper(), "bare"
    m = re.match(r"([A-Z])[.):]\s", text + " ")
    if m and m.group(1) in valid:
        return m.group(1), "letter_prefix"
    m = re.search(r"\(([A-Z])\)", text)
    if m and m.group(1) in valid:
        return m.group(1), "parenthesized"
    m = re.search(r"answer(?: is|:)\s*(?:option\s*)?\(?([A-Z])\b", text, flags=re.IGNORECASE)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper(), "answer_is"
    said = _norm(text)
    exact = [i for i, c in enumerate(choices) if _norm(c) == said]
    if len(exact) == 1:
        return valid[exact[0]], "option_text"
    contained = [i for i, c in enumerate(choices) if _norm(c) and re.search(rf"\b{re.escape(_norm(c))}\b", said)]
    if len(contained) == 1:
        return valid[contained[0]], "option_text"
    return None, "unparsed"


def format_choices(choices: Sequence[str]) -> str:
    """Options as ScienceQA/LLaVA prompts write them: one "A. text" per line."""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
