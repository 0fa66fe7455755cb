"""Each built-in tool, run on rendered pixels, against the scene's ground truth over many seeds."""
import random

import numpy as np
import pytest
from PIL import Image

from mmtune.tools.registry import TOOLS, ToolError
from mmtune.world.language import PLURALS, SHAPE_SYNONYMS
from mmtune.world.scenes import IMAGE_SIZE, SHAPES, WORDS, Scene, render, sample_scene

SEEDS = range(40)


def _scene(seed: int) -> Scene:
    """Crowded scenes (up to 12 objects) with a word half of the time: neighbours of one colour,
    stars with thin points, the grey word beside shapes."""
    return sample_scene(random.Random(f"tools|{seed}"), n_objects=(1, 12), word_prob=0.5)


def _norm(box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(round(v / IMAGE_SIZE, 2) for v in box)


def _run(tool: str, image: Image.Image, **arguments):
    return TOOLS[tool].function(image, **arguments)


@pytest.mark.parametrize("seed", SEEDS)
def test_detect_finds_every_object_of_a_phrase_at_its_exact_box(seed):
    scene = _scene(seed)
    image = render(scene)
    for obj in scene.objects:
        expected = sorted(_norm(o.box) for o in scene.objects if (o.colour, o.kind) == (obj.colour, obj.kind))
        assert sorted(_run("detect", image, name=f"{obj.colour} {obj.kind}")) == expected
        assert _norm(obj.box) in _run("detect", image, name=obj.phrase)


@pytest.mark.parametrize("seed", SEEDS)
def test_count_equals_the_scene_count_for_every_shape(seed):
    scene = _scene(seed)
    image = render(scene)
    for shape in SHAPES:
        truth = len(scene.of_kind(shape))
        assert _run("count", image, name=shape) == truth
        assert _run("count", image, name=PLURALS[shape]) == truth  # "How many stars": the plural works too
        assert _run("count", image, name=SHAPE_SYNONYMS[shape]) == truth


@pytest.mark.parametrize("seed", SEEDS)
def test_read_text_reads_the_printed_word_or_says_none(seed):
    scene = _scene(seed)
    image = render(scene)
    assert _run("read_text", image, box=(0.0, 0.0, 1.0, 1.0)) == (scene.word or "")
    assert _run("read_text", image, box=(0.0, 0.75, 1.0, 1.0)) == (scene.word or "")  # the word strip


def test_read_text_knows_every_lexicon_word():
    for word in WORDS:
        assert _run("read_text", render(Scene("natural", (), word=word)), box=(0.0, 0.0, 1.0, 1.0)) == word


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_describe_names_the_object_in_a_box(seed):
    scene = _scene(seed)
    image = render(scene)
    for obj in scene.objects:
        assert _run("describe", image, box=_norm(obj.box)) == obj.phrase


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_crop_returns_the_box_pixels_enlarged(seed):
    scene = _scene(seed)
    image = render(scene)
    obj = scene.objects[0]
    x1, y1, x2, y2 = obj.box
    crop = _run("crop", image, box=tuple(v / IMAGE_SIZE for v in obj.box))
    assert crop.size == image.size
    original = np.array(image)[y1:y2, x1:x2]
    zoom = np.array(crop.resize((x2 - x1, y2 - y1), Image.NEAREST))
    assert (zoom == original).mean() > 0.9  # nearest-neighbour up and down again: the same pixels


def test_a_phrase_with_an_unknown_word_is_a_tool_error_that_lists_the_words():
    image = render(_scene(0))
    with pytest.raises(ToolError, match="unknown word 'dog'.*circle"):
        _run("count", image, name="dog")


def test_an_empty_box_is_a_tool_error():
    with pytest.raises(ToolError, match="x1 < x2"):
        _run("describe", render(_scene(0)), box=(0.5, 0.5, 0.5, 0.9))


def test_aerial_scenes_have_no_palette_objects():
    scene = sample_scene(random.Random(3), "aerial")
    assert _run("detect", render(scene), name="object") == []
