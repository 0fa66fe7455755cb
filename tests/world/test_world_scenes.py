"""Scenes: deterministic pixels, and ground truth that matches what is drawn."""
import io
import random
import re
from collections import deque

import numpy as np
import pytest

from mmtune.world.language import PLURALS
from mmtune.world.scenes import COLOURS, IMAGE_SIZE, render, sample_scene
from mmtune.world.tasks import get_world_task


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def regions(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """8-connected components of a boolean mask (thin star tips touch only diagonally)."""
    seen, out = np.zeros_like(mask), []
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        comp, todo = set(), deque([(y, x)])
        seen[y, x] = True
        while todo:
            cy, cx = todo.popleft()
            comp.add((cy, cx))
            for ny, nx in ((cy + dy, cx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    todo.append((ny, nx))
        out.append(comp)
    return out


def colour_mask(image, colour: str) -> np.ndarray:
    return (np.asarray(image) == np.array(COLOURS[colour])).all(axis=-1)


@pytest.mark.parametrize("domain", ["natural", "aerial"])
def test_same_seed_gives_byte_identical_png(domain):
    a = render(sample_scene(random.Random(7), domain, word_prob=1.0))
    b = render(sample_scene(random.Random(7), domain, word_prob=1.0))
    c = render(sample_scene(random.Random(8), domain, word_prob=1.0))
    assert a.size == (IMAGE_SIZE, IMAGE_SIZE)
    assert png_bytes(a) == png_bytes(b)
    assert png_bytes(a) != png_bytes(c)


def test_task_samples_are_reproducible():
    task = get_world_task("vqa")
    a, b = task.samples("test", 5, seed=3), task.samples("test", 5, seed=3)
    assert [s.messages for s in a] == [s.messages for s in b]
    assert [png_bytes(s.images[0]) for s in a] == [png_bytes(s.images[0]) for s in b]


def test_each_object_is_one_region_of_its_colour():
    for i in range(40):
        scene = sample_scene(random.Random(i), n_objects=(1, 5), word_prob=0.5)
        image = render(scene)
        for colour in {o.colour for o in scene.objects}:
            assert len(regions(colour_mask(image, colour))) == sum(o.colour == colour for o in scene.objects)


def _named_shape(prompt: str) -> str:
    plural = re.search(r"(?:How many|Count the) (\w+)", prompt).group(1)
    return next(shape for shape, p in PLURALS.items() if p == plural)


def test_counting_answer_matches_pixels():
    task = get_world_task("iconqa")
    for i in range(30):
        scene, (item,) = task.make(random.Random(f"pixels{i}"))
        image = render(scene)
        # Every object is its own blob, so pixels give the object list; the answer counts the named shape.
        blobs = sum(len(regions(colour_mask(image, c))) for c in {o.colour for o in scene.objects})
        assert blobs == len(scene.objects)
        assert int(item.answer) == len(scene.of_kind(_named_shape(item.prompt))) >= 1


def test_grounding_box_covers_the_object_pixels():
    task = get_world_task("refcoco")
    checked = 0
    for i in range(40):
        made = task.make(random.Random(f"box{i}"))
        if made is None:
            continue
        scene, (item,) = made
        colour, kind = re.search(r"the (\w+) (\w+)\.$", item.prompt).groups()
        (target,) = [o for o in scene.objects if (o.colour, o.kind) == (colour, kind)]
        cx, cy = (int(v) for v in target.centre)
        (blob,) = [r for r in regions(colour_mask(render(scene), colour)) if (cy, cx) in r]
        ys, xs = zip(*blob)
        x1, y1, x2, y2 = (v * IMAGE_SIZE for v in item.meta["box"])
        # Covered (boxes are rounded to 2 decimals: 0.64 px), and the box fits the blob (IoU >= 0.5).
        assert x1 - 0.7 <= min(xs) and max(xs) + 1 <= x2 + 0.7 and y1 - 0.7 <= min(ys) and max(ys) + 1 <= y2 + 0.7
        blob_area = (max(xs) + 1 - min(xs)) * (max(ys) + 1 - min(ys))
        assert blob_area / ((x2 - x1) * (y2 - y1)) >= 0.5
        checked += 1
    assert checked >= 30
