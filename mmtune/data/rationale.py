"""Chain-of-thought records: a rationale beside or inside the answer, and the data variants tuning uses.

A record gives its rationale as ``meta["rationale"]`` (a ``rationale`` field of LLaVA JSON / messages JSONL)
or inside its answer, "<rationale> So the answer is X.". The variants:
  - ``one_stage``: one response, the rationale then the answer, to a prompt without its direct-answer
    instruction;
  - ``rationale_stage`` / ``answer_stage``: Multimodal-CoT's two models (Zhang et al. 2023); the first
    writes the rationale, the second answers with the rationale in its prompt.
Pure functions of Samples, so training data (the ``cot`` method, ``mmtune.recipes.cot``) and evaluation
(``mmtune.eval.cot``) share them.
"""
from __future__ import annotations

import dataclasses
import re

from mmtune.data.sample import Sample, assistant_turn
from mmtune.data.templates import CHOICE_SUFFIX, SHORT_ANSWER_SUFFIX

# Instructions that ask for the answer alone; a CoT prompt leaves them out.
DIRECT_INSTRUCTIONS = (CHOICE_SUFFIX, SHORT_ANSWER_SUFFIX)
ONE_STAGE_ANSWER = "{rationale} So the answer is {answer}."
# The world's vocabulary has no "So" (a new word would change its tokenizer and every base).
WORLD_ONE_STAGE_ANSWER = "{rationale} the answer is {answer}."

def split_rationale(text: str) -> tuple[str, str] | None:
    """``"<rationale> So the answer is X."`` -> ``(rationale, "X")`` at the last "the answer is";
    None without one."""
    said = list(re.finditer(r"(?:\bso,?\s+)?\bthe answer is\b\s*:?", text, re.IGNORECASE))
    if not said:
        return None
    last = said[-1]
    return text[: last.start()].strip(), text[last.end():].strip().rstrip(".").strip()


def cot_prompt(text: str, trigger: str = "") -> str:
    """``text`` without its direct-answer instruction lines, then ``trigger`` on its own line."""
    lines = [line for line in text.split("\n") if line.strip() not in DIRECT_INSTRUCTIONS]
    return "\n".join(lines + ([trigger] if trigger else []))


def with_user_text(sample: Sample, rewrite) -> Sample:
    """A copy of ``sample`` whose last user text is ``rewrite(text)``."""
    messages = [dict(m) for m in sample.messages]
    for message in reversed(messages):
        if message["role"] == "user":
            if isinstance(message["content"], str):
                message["content"] = rewrite(message["content"])
            else:
                parts = [dict(p) for p in message["content"]]
                text_at = max(i for i, p in enumerate(parts) if p.get("type") == "text")
                parts[text_at]["text"] = rewrite(parts[text_at]["text"])
                message["content"] = parts
            return dataclasses.replace(sample, messages=messages)
    raise ValueError(f"sample {sample.id!r} has no user turn to prompt with")


def rationale_and_answer(sample: Sample) -> tuple[str, str]:
    """The record's rationale and bare answer: ``meta["rationale"]`` beside the final answer, else
    both read from an answer written "<rationale> So the answer is X."."""
    answer = sample.text_of("assistant")[-1] if sample.text_of("assistant") else ""
    if sample.meta.get("rationale"):
        return sample.meta["rationale"], answer
    split = split_rationale(answer)
    if split is None or not split[0]:
        raise ValueError(f"record {sample.id!r} has no rationale: add a 'rationale' field or write its answer as "
                         "'<rationale> So the answer is X.'")
    return split


def _with_answer(sample: Sample, text: str) -> Sample:
    messages = [*sample.prompt_messages(), assistant_turn(text)]
    return dataclasses.replace(sample, messages=messages)


def one_stage(sample: Sample, template: str = ONE_STAGE_ANSWER) -> Sample:
    """Rationale then answer in one response, asked without the direct-answer instruction."""
    rationale, answer = rationale_and_answer(sample)
    asked = with_user_text(sample, cot_prompt)
    return _with_answer(asked, template.format(rationale=rationale, answer=answer))


def rationale_stage(sample: Sample) -> Sample:
    """Multimodal-CoT's first stage: the same prompt as ``one_stage``, the rationale alone as response."""
    rationale, _ = rationale_and_answer(sample)
    return _with_answer(with_user_text(sample, cot_prompt), rationale)


def with_rationale_in_prompt(text: str, rationale: str) -> str:
    """The question, the rationale, then the direct-answer instruction (if the question has one)."""
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.strip() in DIRECT_INSTRUCTIONS), len(lines))
    return "\n".join([*lines[:at], rationale, *lines[at:]])


def answer_stage(sample: Sample, rationale: str | None = None) -> Sample:
    """Multimodal-CoT's second stage: the prompt with a rationale in it (the record's own unless
    ``rationale`` is given, e.g. the first stage's), the bare answer as response."""
    own, answer = rationale_and_answer(sample)
    asked = with_user_text(sample, lambda text: with_rationale_in_prompt(text, own if rationale is None else rationale))
    return _with_answer(asked, answer)
