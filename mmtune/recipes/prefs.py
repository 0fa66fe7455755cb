"""Self-generated preference pairs (RLAIF-V / self-rewarding style): the model being aligned
answers each prompt N times with sampling, a verifier scores every answer against the task's
ground truth, and the best answer is paired against the worst; prompts whose answers all score
the same (ties) give no pair.

Verifiers: for a description task (samples carry ``meta["objects"]``, the objects in the image)
the score is minus the number of object mentions CHAIR counts as hallucinated, and among answers
of equal score the one naming more of the present objects ranks higher (so the chosen side is not
merely the answer that says least); for any other task, its per-sample metric (``Task.judge``:
exact match, VQA accuracy, IoU >= 0.5 ...). Ties are decided by the score alone.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import ProcessorMixin

from mmtune.data.preferences import Preference
from mmtune.data.sample import Sample
from mmtune.eval.metrics.hallucination import VOCABULARIES, ObjectVocabulary, extract_objects
from mmtune.eval.runner import generate_answers
from mmtune.eval.task import Task

# (score, rank among answers of equal score): higher is better for both.
Verifier = Callable[[Sample, str], "tuple[float, float]"]


@dataclass(frozen=True)
class SelfPairSettings:
    """How answers are sampled and paired."""

    n: int = 4  # answers sampled per prompt
    temperature: float = 1.0
    max_new_tokens: int | None = None  # default: the task's own
    batch_size: int = 8  # prompts per generate call (each gives n answers)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"self-generated pairs: n={self.n}; sample at least 2 answers per prompt to pair them")
        if not self.temperature > 0:
            raise ValueError(f"self-generated pairs: temperature={self.temperature}; sampling needs a temperature > 0")
        if self.batch_size < 1:
            raise ValueError(f"self-generated pairs: batch_size={self.batch_size}; use 1 or more")


def hallucination_verifier(vocabulary: ObjectVocabulary) -> Verifier:
    """Minus the object mentions of an answer that name objects not in ``meta["objects"]``; among
    equal counts, the number of present objects it names."""

    def score(sample: Sample, answer: str) -> tuple[float, float]:
        present = set(sample.meta["objects"])
        named = extract_objects(answer, vocabulary)
        return -float(sum(obj not in present for obj in named)), float(len(present & set(named)))

    return score


def task_verifier(task: Task) -> Verifier:
    """The task's per-sample score of an answer (parsed as the task parses it), in [0, 1]."""

    def score(sample: Sample, answer: str) -> tuple[float, float]:
        value = task.judge(sample, answer).score
        if value is None:
            raise ValueError(f"task {task.name!r} scores only whole sets ({task.metric}); self-generated pairs need a "
                             "per-sample verifier: pick a task with a per-sample metric or a description task")
        return float(value), 0.0

    return score


def verifier_for(task: Task, vocabulary: str | None = None) -> tuple[Verifier, str]:
    """The verifier a task's samples allow, and its name for the pairs' records: CHAIR's count when
    they carry ``meta["objects"]`` (``vocabulary``: "world" for world tasks, else "coco" unless
    named), the task's metric otherwise."""
    if task.samples and "objects" in task.samples[0].meta:
        name = vocabulary or ("world" if task.name.startswith("world_") else "coco")
        return (hallucination_verifier(VOCABULARIES.lookup(name)),
                f"hallucinated objects ({name} vocabulary), then present objects named")
    return task_verifier(task), task.metric


def self_pairs(model: nn.Module, processor: ProcessorMixin, task: Task, settings: SelfPairSettings = SelfPairSettings(),
               *, limit: int | None = None, vocabulary: str | None = None, progress: bool = True) -> list[Preference]:
    """Best-against-worst pairs from ``settings.n`` sampled answers per prompt of ``task``; the
    same model, task and seed give the same pairs."""
    verify, verifier_name = verifier_for(task, vocabulary)
    samples = task.samples[:limit]
    prompts = [task.prompt_sample(s) for s in samples]
    max_new_tokens = settings.max_new_tokens or task.generation.max_new_tokens
    torch.manual_seed(settings.seed)
    was_training = model.training
    model.eval()
    out: list[Preference] = []
    try:
        for start in tqdm(range(0, len(prompts), settings.batch_size), desc=f"sampling {task.name}",
                          disable=not progress, unit="batch"):
            batch = prompts[start:start + settings.batch_size]
            answers = generate_answers(model, processor, batch, max_new_tokens=max_new_tokens, do_sample=True,
                                       temperature=settings.temperature, num_return_sequences=settings.n)
            for k, prompt in enumerate(batch):
                group = answers[k * settings.n:(k + 1) * settings.n]
                pair = _best_against_worst(group, [verify(samples[start + k], a) for a in group])
                if pair is not None:
                    out.append(_preference(prompt, *pair, task=task.name, verifier=verifier_name, settings=settings))
    finally:
        model.train(was_training)
    return out


def _best_against_worst(answers: Sequence[str], scored: Sequence[tuple[float, float]]
                        ) -> tuple[tuple[str, tuple[float, float]], tuple[str, tuple[float, float]], list[float]] | None:
    """The first best and first worst non-empty answer by (score, rank), and every answer's score;
    None on a tie (equal scores, or the same text) or when fewer than two answers say anything."""
    said = [i for i, a in enumerate(answers) if a.strip()]
    if len(said) < 2:
        return None
    best = max(said, key=lambda i: scored[i])
    worst = min(said, key=lambda i: scored[i])
    if scored[best][0] == scored[worst][0] or answers[best].strip() == answers[worst].strip():
        return None
    return (answers[best], scored[best]), (answers[worst], scored[worst]), [s for s, _ in scored]


def _preference(prompt: Sample, chosen: tuple[str, tuple[float, float]], rejected: tuple[str, tuple[float, float]],
                scores: list[float], *, task: str, verifier: str, settings: SelfPairSettings) -> Preference:
    construction: dict[str, Any] = {
        "method": "self", "task": task, "verifier": verifier,
        "scores": {"chosen": chosen[1][0], "rejected": rejected[1][0], "all": scores},
        "ranks": {"chosen": chosen[1][1], "rejected": rejected[1][1]},
        "n": settings.n, "temperature": settings.temperature, "seed": settings.seed,
    }
    return Preference(id=f"{prompt.id}-self", messages=prompt.prompt_messages(), images=list(prompt.images),
                      chosen=chosen[0], rejected=rejected[0], meta={"construction": construction})
