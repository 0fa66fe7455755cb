"""World tasks: each a ``WorldTask`` in ``WORLD_TASKS`` that turns seeded scenes into Samples.

Splits never share an image: every scene is assigned to one split by its fingerprint
(``_split_of``), and each split draws from its own seed stream, keeping only scenes of its own.
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.registry import Registry
from mmtune.world.scenes import Scene, render

SPLITS = ("train", "val", "test")
# Fingerprint buckets per split: 80 / 10 / 10.
_BUCKETS = {"train": range(0, 8), "val": range(8, 9), "test": range(9, 10)}


@dataclass
class Item:
    """One question about a scene: the instruction, the reference answer, the eval references."""

    prompt: str
    answer: str
    meta: dict = field(default_factory=dict)


# A maker draws one scene and its questions (MME/POPE: a yes/no pair), or None to redraw.
Maker = Callable[[random.Random], "tuple[Scene, list[Item]] | None"]


@dataclass(frozen=True)
class WorldTask:
    """A seen (pre-training) or downstream (tuning target) task of the synthetic world."""

    name: str
    seen: bool
    kind: str  # an eval task kind (mmtune.eval.tasks.kinds.TASK_KINDS), checked when eval registers the task
    chance: float  # score of a random guesser in the task's metric, 0-100
    description: str
    make: Maker

    def scenes(self, split: str, seed: int = 0) -> Iterator[tuple[str, Scene, list[Item]]]:
        """``(image_id, scene, items)`` of ``split`` in the order ``samples`` uses them, without end:
        what builds on the exact scene (preference pairs) reads the scenes behind the samples."""
        if split not in _BUCKETS:
            raise ValueError(f"world task {self.name!r}: unknown split {split!r}; use one of {SPLITS}")
        for i in itertools.count():
            made = self.make(random.Random(f"{self.name}|{split}|{seed}|{i}"))
            if made is not None and _split_of(made[0]) == split:
                yield f"{self.name}-{split}-{seed}-{i}", made[0], made[1]

    def samples(self, split: str, n: int, seed: int = 0) -> list[Sample]:
        """``n`` samples of ``split``; the same (split, n, seed) always gives the same samples."""
        out: list[Sample] = []
        for image_id, scene, items in self.scenes(split, seed):
            if len(out) >= n:
                break
            image = render(scene)
            for j, item in enumerate(items[: n - len(out)]):
                out.append(Sample(
                    id=f"{image_id}-{j}",
                    messages=[user_turn(item.prompt), assistant_turn(item.answer)],
                    images=[image],
                    meta={"task": self.name, "answer": item.answer, "image_id": image_id, **item.meta},
                ))
        return out


def _split_of(scene: Scene) -> str:
    bucket = int(scene.fingerprint(), 16) % 10
    return next(s for s, r in _BUCKETS.items() if bucket in r)


WORLD_TASKS: Registry[WorldTask] = Registry("world task")


def register_world_task(task: WorldTask) -> WorldTask:
    return WORLD_TASKS.register(task.name, task)


def get_world_task(name: str) -> WorldTask:
    return WORLD_TASKS.lookup(name)


def seen_tasks() -> list[WorldTask]:
    return [t for t in WORLD_TASKS.values() if t.seen]


def downstream_tasks() -> list[WorldTask]:
    return [t for t in WORLD_TASKS.values() if not t.seen]


def text_only_instructions(n: int, seed: int = 0) -> list[Sample]:
    """Text-only instruction samples, mixed into multimodal batches (hybrid composition)."""
    from mmtune.world.tasks.text import text_instruction

    out = []
    for i in range(n):
        prompt, answer = text_instruction(random.Random(f"text|{seed}|{i}"))
        out.append(Sample(
            id=f"text-{seed}-{i}",
            messages=[user_turn(prompt, n_images=0), assistant_turn(answer)],
            meta={"task": "text", "answer": answer},
        ))
    return out


def text_instructions_beside_images(n: int, seed: int = 0) -> list[Sample]:
    """The same language instructions, each asked beside an unrelated natural scene, half of them
    counting words: language skills should hold when an image is present. Aimed at IconQA, which
    the base met with "How many stars are there?" -> "cat" (a word, never a number); measured, it
    has not carried over yet (the base still answers it with words)."""
    from mmtune.world.scenes import sample_scene
    from mmtune.world.tasks.text import text_instruction

    out = []
    for i in range(n):
        rng = random.Random(f"text-image|{seed}|{i}")
        prompt, answer = text_instruction(rng, weights=(1, 1, 4, 1, 1))  # counting half the time
        out.append(Sample(
            id=f"text-image-{seed}-{i}",
            messages=[user_turn(prompt), assistant_turn(answer)],
            images=[render(sample_scene(rng))],
            meta={"task": "text_image", "answer": answer},
        ))
    return out


# Registration happens on import of the task modules.
from mmtune.world.tasks import downstream, seen  # noqa: E402,F401
