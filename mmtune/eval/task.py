"""The Task: samples with references, instruction templates, an answer parser and a metric.

A task module is small: it builds its samples, picks a parser and a metric, and registers a
factory under a name. The runner only talks to this interface, so adding a benchmark is one
module + one ``register_task`` call (nanochat's ``tasks/*.py`` is the model).
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from mmtune.data.sample import Sample
from mmtune.registry import Registry

DEFAULT_TEMPLATE = "{prompt}"


@dataclass(frozen=True)
class Parsed:
    """A parsed answer (None when no rule matched) and the name of the rule that fired."""

    answer: Any
    rule: str


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated; part of every cache key. Only greedy outputs are cached."""

    max_new_tokens: int = 16
    greedy: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prediction:
    """One sample's outcome: what the model said, what the parser made of it, its score."""

    sample: Sample
    raw: str
    parsed: Parsed
    score: float | None  # per-sample score in [0, 1]; None for corpus-level metrics (CIDEr)


class Parser(Protocol):
    def __call__(self, raw: str, sample: Sample) -> Parsed: ...


class SampleScorer(Protocol):
    def __call__(self, parsed: Parsed, sample: Sample) -> float | None: ...


class Aggregator(Protocol):
    def __call__(self, predictions: list[Prediction]) -> dict[str, float]: ...


def mean_score(key: str) -> Aggregator:
    """Aggregate per-sample scores in [0, 1] into ``{key: mean * 100}`` (0 for no samples), and,
    as GQA's evaluation reports accuracy per question type, ``{key}/{type}`` for each
    ``meta["question_type"]`` the samples carry."""

    def mean(scores: list[float]) -> float:
        return 100.0 * sum(scores) / len(scores) if scores else 0.0

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        scored = [p for p in predictions if p.score is not None]
        by_type: dict[str, list[float]] = {}
        for p in scored:
            if (kind := p.sample.meta.get("question_type")) is not None:
                by_type.setdefault(str(kind), []).append(p.score)
        return {key: mean([p.score for p in scored])} | {f"{key}/{k}": mean(v) for k, v in sorted(by_type.items())}

    return aggregate


def raw_answer(raw: str, sample: Sample) -> Parsed:
    """The identity parser: free-form answers are normalized by their metric, not here."""
    return Parsed(raw.strip(), "raw")


@dataclass
class Task:
    """A benchmark ready to run: everything the runner needs and nothing model-specific.

    ``templates`` wrap the sample's last user text (``{prompt}``); more than one template lets
    the runner measure instruction sensitivity. Scores are on a 0-100 scale like ``chance``.
    """

    name: str
    samples: list[Sample]
    score: SampleScorer
    metric: str  # key of the headline score in ``aggregate``'s result
    chance: float
    seen: bool
    parse: Parser = raw_answer
    aggregate: Aggregator | None = None  # default: mean of per-sample scores under ``metric``
    templates: tuple[str, ...] = (DEFAULT_TEMPLATE,)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    description: str = ""
    reference: str = ""  # the reference evaluator (tool and file) whose scoring rules are followed

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError(f"task {self.name!r}: give at least one instruction template")
        for t in self.templates:
            if "{prompt}" not in t:
                raise ValueError(f"task {self.name!r}: template {t!r} must contain '{{prompt}}'")
        if self.aggregate is None:
            self.aggregate = mean_score(self.metric)

    def prompt_messages(self, sample: Sample, template: int = 0) -> list[dict[str, Any]]:
        """The sample's conversation without its answer, last user text wrapped in a template."""
        messages = copy.deepcopy(sample.prompt_messages())
        wrap = self.templates[template]
        for message in reversed(messages):
            if message["role"] != "user":
                continue
            if isinstance(message["content"], str):
                message["content"] = wrap.format(prompt=message["content"])
                return messages
            for part in reversed(message["content"]):
                if part.get("type") == "text":
                    part["text"] = wrap.format(prompt=part["text"])
                    return messages
        raise ValueError(f"task {self.name!r}: sample {sample.id!r} has no user text to prompt with")

    def prompt_sample(self, sample: Sample, template: int = 0) -> Sample:
        """A copy of ``sample`` whose messages are the templated prompt (for collators)."""
        return Sample(id=sample.id, messages=self.prompt_messages(sample, template),
                      images=sample.images, meta=sample.meta)

    def judge(self, sample: Sample, raw: str) -> Prediction:
        parsed = self.parse(raw, sample)
        return Prediction(sample=sample, raw=raw, parsed=parsed, score=self.score(parsed, sample))

    def fingerprint(self, template: int = 0) -> str:
        """Identifies what a cached answer depends on besides the model and the sample itself."""
        blob = json.dumps(
            {"name": self.name, "template": self.templates[template],
             "generation": self.generation.to_dict()},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TaskInfo:
    """What ``mmtune tasks`` lists: known without building the task (no files read)."""

    name: str
    metric: str
    chance: float | None
    seen: bool | None
    description: str
    needs_root: bool
    options: tuple[str, ...] = ()  # keyword arguments the factory accepts (e.g. root, split, box_format)


@dataclass(frozen=True)
class TaskEntry:
    factory: Callable[..., Task]
    info: TaskInfo


TASKS: Registry[TaskEntry] = Registry(
    "eval task", builtins=("mmtune.eval.tasks.benchmarks", "mmtune.eval.tasks.world")
)


def register_task(
    name: str,
    factory: Callable[..., Task],
    *,
    metric: str,
    chance: float | None = None,
    seen: bool | None = None,
    description: str = "",
    needs_root: bool = False,
) -> Callable[..., Task]:
    """Register ``factory(**kw) -> Task`` under ``name``; returns the factory (decorator-friendly)."""
    options = tuple(p.name for p in inspect.signature(factory).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    TASKS.register(name, TaskEntry(factory, TaskInfo(name, metric, chance, seen, description, needs_root, options)))
    return factory


def get_task(name: str, **kwargs: Any) -> Task:
    """Build the registered task ``name``; benchmark readers take ``root=`` (their data folder)."""
    entry = TASKS.lookup(name)
    factory, info = entry.factory, entry.info
    if info.needs_root and kwargs.get("root") is None:
        raise ValueError(f"eval task {name!r} reads a benchmark from disk: pass root=<its folder>")
    return factory(**kwargs)


def list_tasks() -> list[TaskInfo]:
    """Every registered task, sorted by name."""
    return [TASKS[name].info for name in sorted(TASKS)]
