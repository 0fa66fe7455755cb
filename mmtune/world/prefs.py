"""Preference pairs from the world's exact scenes (POVID / HA-DPO style): chosen = the reference
response of the scene, rejected = the reference response of the same scene with one fact made
false, so the two differ only in a hallucination and share their style word for word.

The false fact is made on the scene, then the scene's response writer describes it:
- ``object``: an absent shape is added, preferably the usual companion of a present one (the
  kind a model that learnt co-occurrence names without seeing it);
- ``attribute``: one object's colour changes;
- ``count``: one more object of a kind already there;
- ``position``: one object moves to a free cell on the other side of the image.
A change the response does not express (a position in a response that states none) is skipped
for the next kind, so every rejected response is really wrong about the image.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from mmtune.data.preferences import Preference
from mmtune.data.sample import user_turn
from mmtune.world.scenes import (
    CELL,
    COLOURS,
    IMAGE_SIZE,
    SHAPES,
    SIZES,
    WORD_STRIP,
    Scene,
    SceneObject,
    active_variant,
    cell_box,
    render,
)
from mmtune.world.tasks import get_world_task
from mmtune.world.tasks.seen import CONFUSABLE, captions, description

HALLUCINATIONS = ("object", "attribute", "count", "position")

# World task -> the writer of its reference response from a scene (the chosen side).
RESPONSES: dict[str, Callable[[Scene], str]] = {
    "caption": lambda scene: captions(scene)[0],
    "describe": description,
}


def _cell(obj: SceneObject) -> tuple[int, int]:
    x, y = obj.centre
    return int(y // CELL), int(x // CELL)


def _free_cells(scene: Scene) -> list[tuple[int, int]]:
    rows = (IMAGE_SIZE - (WORD_STRIP if scene.word else 0)) // CELL
    taken = {_cell(o) for o in scene.objects}
    return [(r, c) for r in range(rows) for c in range(IMAGE_SIZE // CELL) if (r, c) not in taken]


def _placed(rng: random.Random, kind: str, cells: Sequence[tuple[int, int]]) -> SceneObject:
    row, col = rng.choice(list(cells))
    size = rng.choice(list(SIZES))
    return SceneObject(kind, rng.choice(list(COLOURS)), size, cell_box(row, col, size))


def _with(scene: Scene, objects: Sequence[SceneObject]) -> Scene:
    return dataclasses.replace(scene, objects=tuple(objects))


def companion(kind: str) -> str:
    """The kind a model is most likely to name beside ``kind`` without seeing it: its co-occurring
    companion in a world variant, else the shape POPE's adversarial probes confuse it with."""
    variant = active_variant()
    return variant.companion(kind) if variant is not None else CONFUSABLE[kind]


def add_absent_object(scene: Scene, rng: random.Random) -> tuple[Scene, dict[str, Any]] | None:
    """An absent shape added in a free cell: a present shape's companion when one is absent."""
    present = {o.kind for o in scene.objects}
    companions = sorted({companion(k) for k in present} - present)
    absent = companions or [s for s in SHAPES if s not in present]
    if not absent or not (cells := _free_cells(scene)):
        return None
    kind = rng.choice(absent)
    added = _placed(rng, kind, cells)
    record = {"type": "object", "object": kind, "phrase": added.phrase,
              "companion_of": sorted(k for k in present if companion(k) == kind)}
    return _with(scene, [*scene.objects, added]), record


def change_colour(scene: Scene, rng: random.Random) -> tuple[Scene, dict[str, Any]] | None:
    """One object's colour replaced by another colour."""
    i = rng.randrange(len(scene.objects))
    obj = scene.objects[i]
    colour = rng.choice([c for c in COLOURS if c != obj.colour])
    objects = list(scene.objects)
    objects[i] = dataclasses.replace(obj, colour=colour)
    return _with(scene, objects), {"type": "attribute", "attribute": "colour", "object": obj.kind,
                                   "true": obj.colour, "injected": colour}


def add_same_kind(scene: Scene, rng: random.Random) -> tuple[Scene, dict[str, Any]] | None:
    """One more object of a kind the scene has, in a free cell."""
    if not (cells := _free_cells(scene)):
        return None
    kind = rng.choice(sorted({o.kind for o in scene.objects}))
    true = len(scene.of_kind(kind))
    return _with(scene, [*scene.objects, _placed(rng, kind, cells)]), {
        "type": "count", "object": kind, "true": true, "injected": true + 1}


def move_across(scene: Scene, rng: random.Random) -> tuple[Scene, dict[str, Any]] | None:
    """One object moved to a free cell on the other half of the image (left <-> right)."""
    i = rng.randrange(len(scene.objects))
    obj = scene.objects[i]
    left = obj.centre[0] < IMAGE_SIZE / 2
    cells = [(r, c) for r, c in _free_cells(scene) if (c < IMAGE_SIZE // CELL // 2) != left]
    if not cells:
        return None
    row, col = rng.choice(cells)
    objects = list(scene.objects)
    objects[i] = dataclasses.replace(obj, box=cell_box(row, col, obj.size))
    sides = ("left", "right") if left else ("right", "left")
    return _with(scene, objects), {"type": "position", "object": obj.phrase, "true": sides[0], "injected": sides[1]}


EDITS: dict[str, Callable[[Scene, random.Random], "tuple[Scene, dict[str, Any]] | None"]] = {
    "object": add_absent_object, "attribute": change_colour, "count": add_same_kind, "position": move_across,
}


def hallucinated(scene: Scene, respond: Callable[[Scene], str], kinds: Sequence[str],
                 rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    """The response to ``scene`` with one false fact, trying ``kinds`` in order; None when no
    edit of those kinds changes the response."""
    true = respond(scene)
    for kind in kinds:
        if (edit := EDITS[kind](scene, rng)) is not None and (text := respond(edit[0])) != true:
            return text, edit[1]
    return None


def injected_pairs(task: str = "describe", *, split: str = "train", n: int = 100, seed: int = 0,
                   kinds: Sequence[str] = HALLUCINATIONS) -> list[Preference]:
    """``n`` pairs on ``split`` scenes of world ``task`` (a key of ``RESPONSES``), one
    hallucination each; the kinds take turns so each is about equally common."""
    if task not in RESPONSES:
        raise ValueError(f"world task {task!r} has no response writer for injected pairs; use one of {sorted(RESPONSES)}")
    if not kinds or (unknown := [k for k in kinds if k not in EDITS]):
        raise ValueError(f"unknown hallucination kinds {unknown or kinds!r}; use some of {HALLUCINATIONS}")
    respond, out = RESPONSES[task], []
    for image_id, scene, items in get_world_task(task).scenes(split, seed):
        if len(out) >= n:
            break
        if not scene.objects:
            continue
        rng = random.Random(f"prefs|{image_id}")
        turn = len(out) % len(kinds)
        made = hallucinated(scene, respond, [*kinds[turn:], *kinds[:turn]], rng)
        if made is None:
            continue
        rejected, injected = made
        out.append(Preference(
            id=f"{image_id}-injected", messages=[user_turn(items[0].prompt)], images=[render(scene)],
            chosen=respond(scene), rejected=rejected,
            meta={"construction": {"method": "injected", "source": f"world_{task}", "injected": [injected],
                                   "objects": sorted({o.kind for o in scene.objects}), "seed": seed}},
        ))
    return out
