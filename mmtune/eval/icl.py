"""Multimodal in-context learning at evaluation: k demonstrations from a task's training records.

``IclSettings`` is what ``mmtune eval --shots`` asks for; ``DemonstrationPool`` holds a task's
training records (demonstrations are shown templated like the query, with their answers) and the
vectors ``nearest`` ranks by: the model's own image features (vision tower + projector output,
mean-pooled over the image's tokens) or the question's bag of words. ``IclDraw`` turns a task's
prompt samples into k-shot ones for one draw; draw ``d`` seeds selection and permutation with
``d``, so P draws measure how much a score depends on which demonstrations were drawn and their
order. Composition itself is ``mmtune.data.demonstrations.compose``, shared with ICL tuning.
"""
from __future__ import annotations

import inspect
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import ProcessorMixin

from mmtune.data.collate import render
from mmtune.data.demonstrations import (
    ORDERS,
    bag_of_words,
    compose,
    cosine,
    demonstration_answer,
    question_text,
    select,
)
from mmtune.data.sample import Sample, assistant_turn, load_image, user_turn
from mmtune.eval.task import Task

# --icl-select value -> (rule of data.demonstrations.select, the vectors ``nearest`` ranks by)
SELECT_RULES = {"random": ("random", None), "balanced": ("balanced", None),
                "nearest-image": ("nearest", "image"), "nearest-text": ("nearest", "text")}


@dataclass(frozen=True)
class IclSettings:
    """k-shot evaluation: how many demonstrations, how they are chosen and ordered, how many draws."""

    shots: int = field(default=0, metadata={"help": "demonstrations before each query (0 = zero-shot only)"})
    select: str = field(default="random", metadata={"help": f"one of {', '.join(SELECT_RULES)}"})
    order: str = field(default="drawn", metadata={"help": "drawn (as selected) or permuted (seeded shuffle)"})
    draws: int = field(default=1, metadata={"help": "draws with different seeds; mean and std are reported"})

    def __post_init__(self) -> None:
        if self.shots < 0:
            raise ValueError(f"--shots must be >= 0, got {self.shots}")
        if self.select not in SELECT_RULES:
            raise ValueError(f"--icl-select {self.select!r}: use one of {', '.join(SELECT_RULES)}")
        if self.order not in ORDERS:
            raise ValueError(f"--icl-order {self.order!r}: use one of {', '.join(ORDERS)}")
        if self.draws < 1:
            raise ValueError(f"--icl-draws must be >= 1, got {self.draws}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_multi_image(family: str, images_per_prompt: int | None, settings: IclSettings) -> None:
    """Refuse k-shot evaluation for a family whose processor takes fewer images than k + 1."""
    if settings.shots and images_per_prompt is not None and images_per_prompt < settings.shots + 1:
        raise ValueError(f"model family {family!r} takes {images_per_prompt} image(s) per prompt, so it cannot be "
                         f"shown {settings.shots} demonstrations with their images: run it without --shots")


def image_embeddings(model: nn.Module, processor: ProcessorMixin, images: Sequence[Any]) -> torch.Tensor:
    """One vector per image: the model's projected image features (what the language model reads),
    averaged over the image's tokens and tiles. Rows are L2-normalised for cosine similarity."""
    text = render(processor, [user_turn("")], add_generation_prompt=True)
    accepted = inspect.signature(model.get_image_features).parameters
    vectors = []
    with torch.inference_mode():
        for image in images:
            batch = processor(text=[text], images=[load_image(image)], return_tensors="pt")
            inputs = {k: v.to(model.device) for k, v in batch.items() if k in accepted}
            out = model.get_image_features(**inputs)
            features = getattr(out, "pooler_output", out)
            flat = torch.cat([f.reshape(-1, f.shape[-1]) for f in features]) if isinstance(features, (list, tuple)) \
                else features.reshape(-1, features.shape[-1])
            vectors.append(flat.float().mean(dim=0))
    return torch.nn.functional.normalize(torch.stack(vectors), dim=-1).cpu()


class DemonstrationPool:
    """A task's training records as demonstrations, with the vectors ``nearest`` needs (computed once)."""

    def __init__(self, records: Sequence[Sample], source: str) -> None:
        if not records:
            raise ValueError(f"the demonstration pool from {source} is empty; give training records to draw from")
        self.records = list(records)
        self.source = source
        self._text: list | None = None
        # Per model (by identity): the records' image vectors and the queries' (by id), kept across draws.
        self._image: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def templated(self, task: Task, template: int) -> list[Sample]:
        """The records as the model sees a demonstration: question in the task's template, then the answer."""
        return [Sample(r.id, task.prompt_messages(r, template) + [assistant_turn(demonstration_answer(r))],
                       r.images, r.meta) for r in self.records]

    def similarities(self, queries: Sequence[Sample], by: str, model: nn.Module | None = None,
                     processor: ProcessorMixin | None = None) -> list[list[float]]:
        """Per query, its similarity to every record: cosine of bag-of-words or of pooled image features."""
        if by == "text":
            if self._text is None:
                self._text = bag_of_words([question_text(r) for r in self.records])
            return [[cosine(q, r) for r in self._text] for q in bag_of_words([question_text(q) for q in queries])]
        if model is None or processor is None:
            raise ValueError("nearest-image selection needs the model and its processor to embed the images")
        if any(not s.images for s in [*queries, *self.records]):
            raise ValueError("nearest-image selection needs every query and demonstration to have an image; "
                             "use --icl-select nearest-text for text-only records")
        if id(model) not in self._image:
            self._image[id(model)] = (image_embeddings(model, processor, [r.images[0] for r in self.records]), {})
        records, seen = self._image[id(model)]
        new = [q for q in queries if q.id not in seen]
        if new:
            seen.update(zip([q.id for q in new], image_embeddings(model, processor, [q.images[0] for q in new])))
        return (torch.stack([seen[q.id] for q in queries]) @ records.T).tolist()


@dataclass
class IclDraw:
    """One draw of a k-shot evaluation: settings, the pool, and the draw's seed."""

    settings: IclSettings
    pool: DemonstrationPool
    draw: int = 0

    @property
    def suffix(self) -> str:
        """Part of the per-sample file name: the draws never overwrite each other or the zero-shot run."""
        return f".shots{self.settings.shots}.{self.settings.select}.{self.settings.order}.draw{self.draw}"

    def compose_all(self, task: Task, queries: Sequence[Sample], template: int, model: nn.Module | None = None,
                    processor: ProcessorMixin | None = None) -> list[Sample]:
        """``queries`` (prompt samples) with k demonstrations each, selected and ordered for this draw."""
        rule, by = SELECT_RULES[self.settings.select]
        demos = self.pool.templated(task, template)
        similarity = self.pool.similarities(queries, by, model, processor) if by else [None] * len(queries)
        return [compose(q, select(q, demos, self.settings.shots, rule=rule, order=self.settings.order, seed=self.draw,
                                  similarity=sim))
                for q, sim in zip(queries, similarity)]


def draw_summary(scores: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation (n - 1) of the draws' headline scores; std is None for one draw."""
    values = [s for s in scores if s is not None]
    if not values:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}
