"""The tool-using loop (LLM-aided visual reasoning): the model as controller or decision maker.

- ``controller`` (VisProg): the model's first output is a plan, one call per line; every call is
  run, all results come back in one turn, and the model's next output is the answer.
- ``decision`` (MM-REACT): one call per output; the model reads each result and calls again or
  answers, within the limits.

An output that does not open like a call is the answer. The refiner turns tool output into the
task's answer: ``model`` (the model writes the answer after reading the results) or ``rules``
(the last result, cut to its first box: a number for counting, a box for grounding). A bad call
becomes an error turn for the model and is counted; every question ends with an answer or one of
``FAILURES``. Conversations of a batch advance together, one generation per step.
"""
from __future__ import annotations

import copy
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from mmtune.data.sample import Sample, assistant_turn, content_parts, load_image
from mmtune.tools.calls import Call, CallError, DSLFormat, JSONFormat
from mmtune.tools.registry import ToolError, ToolResult

MODES = ("controller", "decision")
REFINERS = ("model", "rules")
FAILURES = {
    "call_limit": "the model asked for another call after max_calls calls",
    "token_limit": "the question's generated tokens reached max_total_tokens before an answer",
    "empty_answer": "the model answered with nothing",
    "call_after_plan": "controller mode: the model called tools again instead of answering",
}
# (conversations, max_new_tokens) -> one output per conversation
Generate = Callable[[list[Sample], int], list[str]]


@dataclass(frozen=True)
class Limits:
    """How far one question may go."""

    max_calls: int = 3  # valid and invalid calls together, so a looping model stops
    max_new_tokens: int = 32  # per generation step
    max_total_tokens: int = 128  # generated over all steps of one question

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_new_tokens", "max_total_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"tool loop limit {name} must be at least 1, got {getattr(self, name)}")


@dataclass
class Episode:
    """One question through the loop: the conversation so far, its counts and its trace."""

    conversation: Sample
    image: Image.Image
    answer: str | None = None
    failure: str | None = None
    calls: int = 0
    invalid: int = 0
    tokens: int = 0
    seconds: float = 0.0
    results: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    planned: bool = False  # controller mode: the plan has run, the next output must be the answer

    @property
    def done(self) -> bool:
        return self.answer is not None or self.failure is not None


def rule_refine(results: list[str]) -> str | None:
    """The last tool result (errors are never results), cut to its first box; None without one."""
    return results[-1].split(" ; ")[0] if results else None


class ToolLoop:
    """Runs questions through the tools with one call format, mode, refiner and limits."""

    def __init__(self, generate: Generate, call_format: DSLFormat | JSONFormat, *, mode: str = "decision",
                 refiner: str = "model", limits: Limits | None = None,
                 count_tokens: Callable[[str], int] = lambda text: len(text.split())) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown tool loop mode {mode!r}; use one of {', '.join(MODES)}")
        if refiner not in REFINERS:
            raise ValueError(f"unknown refiner {refiner!r}; use one of {', '.join(REFINERS)}")
        self.generate, self.format, self.mode, self.refiner = generate, call_format, mode, refiner
        self.limits = limits or Limits()
        self.count_tokens = count_tokens

    def start(self, question: Sample) -> Episode:
        """An episode from a prompt sample (a user turn with the image and the question): the
        tool description is added to the question as the call format writes it."""
        conversation = Sample(question.id, copy.deepcopy(question.prompt_messages()), list(question.images),
                              dict(question.meta))
        turn = conversation.messages[-1]
        turn["content"] = content_parts(turn)
        text = next(p for p in reversed(turn["content"]) if p.get("type") == "text")
        text["text"] = self.format.question(text["text"])
        if isinstance(self.format, JSONFormat):
            self.format.describe(conversation)
        return Episode(conversation, load_image(question.images[0]))

    def run(self, questions: list[Sample], trace: Path | None = None) -> list[Episode]:
        """Every question to an answer or a named failure; each episode's steps appended to ``trace``."""
        episodes = [self.start(q) for q in questions]
        active = list(episodes)
        while active:
            started = time.perf_counter()
            outputs = self.generate([e.conversation for e in active], self.limits.max_new_tokens)
            for episode, output in zip(active, outputs):
                self.step(episode, output)
            share = (time.perf_counter() - started) / len(active)
            for episode in active:
                episode.seconds += share
            for episode in active:
                if episode.done and trace is not None:
                    with open(trace, "a", encoding="utf-8") as f:
                        f.writelines(json.dumps(s) + "\n" for s in episode.steps)
            active = [e for e in active if not e.done]
        return episodes

    def step(self, episode: Episode, output: str) -> None:
        """Read one output: run its call(s) and feed the results back, or take it as the answer."""
        episode.tokens += self.count_tokens(output)
        record: dict[str, Any] = {"id": episode.conversation.id, "step": len(episode.steps), "mode": self.mode,
                                  "prompt": _last_text(episode.conversation), "output": output}
        episode.steps.append(record)
        if not self.format.is_call(output):
            self._answer(episode, output, record)
        elif episode.planned:
            self._fail(episode, "call_after_plan", record)
        elif episode.calls + episode.invalid >= self.limits.max_calls:
            self._fail(episode, "call_limit", record)
        else:
            parsed = self.format.parse(output)
            if self.mode == "decision":
                parsed = parsed[:1]
            self._run_calls(episode, output, parsed, record)
            if self.mode == "controller":
                episode.planned = True
                if self.refiner == "rules":
                    self._answer(episode, "", record)
            if not episode.done and episode.tokens >= self.limits.max_total_tokens:
                self._fail(episode, "token_limit", record)

    def _run_calls(self, episode: Episode, output: str, parsed: list[Call | CallError], record: dict[str, Any]) -> None:
        texts, images, calls, errors = [], [], [], []
        for item in parsed or [CallError("no call could be read from the output")]:
            if episode.calls + episode.invalid >= self.limits.max_calls:
                item = CallError(f"call refused: at most {self.limits.max_calls} calls per question")
            result = self._execute(episode, item)
            if isinstance(result, ToolResult):
                episode.calls += 1
                calls.append(self.format.render_call(item))
                episode.results.append(result.text)
                texts.append(result.text)
                images += [result.image] if result.image is not None else []
            else:
                episode.invalid += 1
                errors.append(str(result))
                texts.append(self.format.error_text(result))
        record.update(call=calls, result=texts, error=errors)
        episode.conversation.messages += [assistant_turn(output), self.format.result_turn("\n".join(texts), len(images))]
        episode.conversation.images += images

    def _execute(self, episode: Episode, item: Call | CallError) -> ToolResult | Exception:
        if isinstance(item, CallError):
            return item
        try:
            return item.tool.run(episode.image, item.arguments)
        except ToolError as e:
            return e
        except Exception as e:  # a user's tool failing must not end the evaluation
            return ToolError(f"tool {item.tool.name} failed: {type(e).__name__}: {e}")

    def _answer(self, episode: Episode, output: str, record: dict[str, Any]) -> None:
        answer = output.strip()
        if self.refiner == "rules" and episode.results:
            answer = rule_refine(episode.results) or answer
        if answer:
            episode.answer = record["answer"] = answer
        else:
            self._fail(episode, "empty_answer", record)

    def _fail(self, episode: Episode, failure: str, record: dict[str, Any]) -> None:
        episode.failure = record["failure"] = failure


def _last_text(sample: Sample) -> str:
    return "".join(p.get("text", "") for p in content_parts(sample.messages[-1]) if p.get("type") == "text")


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """Counts over a run: answers, failures by name, calls per answer, invalid share, latency."""
    answers = sum(e.answer is not None for e in episodes)
    calls = sum(e.calls for e in episodes)
    invalid = sum(e.invalid for e in episodes)
    seconds = sum(e.seconds for e in episodes)
    return {
        "questions": len(episodes),
        "answers": answers,
        "failures": dict(Counter(e.failure for e in episodes if e.failure)),
        "calls": calls,
        "invalid_calls": invalid,
        "calls_per_answer": round(calls / answers, 3) if answers else None,
        "invalid_share": round(invalid / (calls + invalid), 4) if calls + invalid else 0.0,
        "tokens": sum(e.tokens for e in episodes),
        "seconds": round(seconds, 3),
        "seconds_per_question": round(seconds / len(episodes), 4) if episodes else None,
    }
