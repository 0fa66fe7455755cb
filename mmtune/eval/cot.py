"""Chain-of-thought evaluation: answers read after a rationale, zero-shot CoT prompting, CoT's costs.

``cot_task`` turns any task into its CoT version: the direct-answer instruction is dropped from the
prompt ("... directly" forbids a rationale), an optional trigger is appended (Kojima et al.'s
"Let's think step by step."), generation gets room for a rationale, and the answer is extracted
after it (``extract_after_rationale``, the rule that fired logged beside the task's own parser's).
Its scores add tokens generated per answer (CoT's cost) and, on world tasks, rationale
faithfulness: the share of statements true in the exact scene (``mmtune.world.rationale``).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from mmtune.data.rationale import cot_prompt, split_rationale, with_user_text
from mmtune.data.sample import Sample
from mmtune.eval.metrics.choice import LETTERS
from mmtune.eval.task import GenerationSettings, Parsed, Prediction, Task

ZERO_SHOT_TRIGGER = "Let's think step by step."
COT_MAX_NEW_TOKENS = 128

_ANSWER_IS = re.compile(r"\banswer\s*(?:is|:)\s*:?\s*(.+?)\s*(?:\.(?=\s|$)|\n|$)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`]+")


def _last_letter(text: str, valid: str) -> str | None:
    """The last option letter standing as a letter: "(B)", "B.", "B" at the end; a capital "A"
    before a lower-case word ("A star is ...") is an article."""
    found = None
    for m in re.finditer(r"(?<![\w'’-])\(?([A-Z])\)?(?![\w'’-])", text):
        following = text[m.end():]
        if m.group(1) in valid and not (m.group(0) == m.group(1) and re.match(r" [a-z]", following)):
            found = m.group(1)
    return found


def extract_after_rationale(raw: str, sample: Sample) -> tuple[str | None, str]:
    """The answer span written after a rationale and the rule that found it, first match wins:
    ``answer_is`` (the last "the answer is X" / "Answer: X"), ``last_letter`` (multiple choice:
    the last option letter), ``last_number`` (numeric references: the last number),
    ``last_yes_no`` (yes/no references: the last yes or no); ``(None, "unparsed")`` otherwise.
    Which of the last three apply follows the reference's type (``choices``, a number, yes/no),
    never its value."""
    text = _MARKUP.sub("", raw).strip()
    said = _ANSWER_IS.findall(text)
    if said and said[-1].strip():
        return said[-1].strip(), "answer_is"
    if "choices" in sample.meta:
        letter = _last_letter(text, LETTERS[: len(sample.meta["choices"])])
        return (letter, "last_letter") if letter else (None, "unparsed")
    reference = str(sample.meta.get("answer", "")).strip().lower()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", reference) and (numbers := _NUMBER.findall(text)):
        return numbers[-1], "last_number"
    if reference in ("yes", "no") and (words := _YES_NO.findall(text)):
        return words[-1].lower(), "last_yes_no"
    return None, "unparsed"


def rationale_in_answer(raw: str, span: str | None) -> str:
    """The rationale part of an answer: what precedes "the answer is", else its sentences less
    those that are only the answer ("3", "B")."""
    split = split_rationale(raw)
    if split is not None:
        return split[0]
    bare = (span or "").strip().rstrip(".").lower()
    return " ".join(s for s in re.split(r"(?<=\.)\s+", raw.strip()) if s.strip().rstrip(".").lower() != bare)


def _scene(task_name: str, sample: Sample):
    """The exact world scene behind a sample of a world task with rationales (None otherwise,
    also for world variants, whose scenes ``scene_of`` does not redraw)."""
    from mmtune.world.rationale import RATIONALE_WRITERS, scene_of

    if sample.meta.get("task") not in RATIONALE_WRITERS:
        return None
    if "scene" in sample.meta:
        return sample.meta["scene"]
    if task_name != f"world_{sample.meta['task']}" or "image_id" not in sample.meta:
        return None
    return scene_of(sample.meta["image_id"])


def answer_costs(predictions: Sequence[Prediction], task_name: str, tokenizer: Any = None, *,
                 faithfulness: bool = True) -> dict[str, float]:
    """Tokens per answer (re-tokenized answer text, end-of-turn token not counted) when a
    ``tokenizer`` is given, and with ``faithfulness`` on world tasks with rationales: the pooled
    share of rationale statements true in the scene (unreadable ones count as not true),
    ``rationale_rate`` (share of answers with a rationale) and statements per answer."""
    from mmtune.world.rationale import check_rationale

    out: dict[str, float] = {}
    if tokenizer is not None and predictions:
        counts = [len(tokenizer(p.raw, add_special_tokens=False)["input_ids"]) for p in predictions]
        out["tokens_per_answer"] = sum(counts) / len(counts)
    checks = []
    for p in predictions if faithfulness else ():
        if (scene := _scene(task_name, p.sample)) is not None:
            span, _ = extract_after_rationale(p.raw, p.sample)
            checks.append(check_rationale(rationale_in_answer(p.raw, span), scene))
    if checks:
        statements = sum(len(c.statements) for c in checks)
        out["rationale_rate"] = 100.0 * sum(bool(c.statements) for c in checks) / len(checks)
        out["statements_per_answer"] = statements / len(checks)
        if statements:
            out["faithfulness"] = 100.0 * sum(c.count("true") for c in checks) / statements
    return out


def with_answer_costs(task: Task, tokenizer: Any) -> Task:
    """``task`` whose scores also carry tokens per answer (name and cache key unchanged)."""
    aggregate = task.aggregate

    def costed(predictions: list[Prediction]) -> dict[str, float]:
        return {**aggregate(predictions), **answer_costs(predictions, task.name, tokenizer, faithfulness=False)}

    return dataclasses.replace(task, aggregate=costed)


def cot_task(task: Task, *, trigger: str = ZERO_SHOT_TRIGGER, max_new_tokens: int = COT_MAX_NEW_TOKENS,
             tokenizer: Any = None) -> Task:
    """The chain-of-thought version of ``task``, named ``<task>_cot`` (its own cache keys): prompts
    without direct-answer instructions plus ``trigger`` ("" for none, e.g. for a model tuned on
    rationales), ``max_new_tokens`` of room, answers extracted after the rationale."""
    inner_parse, inner_score, inner_aggregate = task.parse, task.score, task.aggregate
    name = f"{task.name}_cot"

    def parse(raw: str, sample: Sample) -> Parsed:
        span, rule = extract_after_rationale(raw, sample)
        if span is None:
            return Parsed(None, rule)
        inner = inner_parse(span, sample)
        return Parsed(inner.answer, f"{rule}/{inner.rule}")

    def score(parsed: Parsed, sample: Sample) -> float | None:
        if parsed.answer is not None:
            return inner_score(parsed, sample)
        # no answer found is wrong; a corpus-level metric (no per-sample score: CIDEr, CHAIR) stays None
        try:
            corpus_level = inner_score(parsed, sample) is None
        except (AttributeError, TypeError, ValueError):  # per-sample scorers that need an answer
            corpus_level = False
        return None if corpus_level else 0.0

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        # aggregates that read the raw answer (MME, POPE) get the extracted span instead
        spans = [dataclasses.replace(p, raw=extract_after_rationale(p.raw, p.sample)[0] or "") for p in predictions]
        return {**inner_aggregate(spans), **answer_costs(predictions, task.name, tokenizer)}

    samples = [with_user_text(s, lambda text: cot_prompt(text, trigger)) for s in task.samples]
    templates = tuple(cot_prompt(t) for t in task.templates)
    return dataclasses.replace(task, name=name, samples=samples, templates=templates, parse=parse, score=score,
                               aggregate=aggregate, generation=GenerationSettings(max_new_tokens=max_new_tokens),
                               reference=f"{task.reference}; answer read after the rationale by eval/cot.py")
