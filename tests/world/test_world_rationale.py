"""Ground-truth rationales of the world's downstream tasks and the exact rationale checker."""
from __future__ import annotations

import re

import pytest

from mmtune.world.language import vocabulary
from mmtune.world.rationale import (
    RATIONALE_WRITERS,
    check_rationale,
    rationale_samples,
    scene_of,
    split_statements,
)
from mmtune.world.scenes import Scene, SceneObject, cell_box
from mmtune.world.tasks import get_world_task


def _scene() -> Scene:
    """Worked by hand: a large red star in row 0, a small blue star in row 2, a small green circle in row 1."""
    return Scene("natural", (
        SceneObject("star", "red", "large", cell_box(0, 0, "large")),    # centre y 8
        SceneObject("star", "blue", "small", cell_box(2, 1, "small")),   # centre y 40
        SceneObject("circle", "green", "small", cell_box(1, 3, "small")),  # centre y 24
    ))


TRUE = [
    "there is a large red star.", "there is a small blue star.", "there are 2 stars.", "there is 1 circle.",
    "there is no square.", "the red star is above the circle.", "the circle is below the large star.",
    "the star is closest to the top of the image.", "the blue star is closest to the bottom of the image.",
]
FALSE = [
    "there are 3 stars.", "there is a large blue star.", "there is a square.", "there is no circle.",
    "the circle is above the red star.", "the circle is closest to the top of the image.", "there is 1 star.",
]


@pytest.mark.parametrize("statement", TRUE)
def test_true_statements_are_accepted(statement):
    check = check_rationale(statement, _scene())
    assert [s.verdict for s in check.statements] == ["true"]
    assert check.faithfulness == 1.0


@pytest.mark.parametrize("statement", FALSE)
def test_injected_false_statements_are_rejected(statement):
    check = check_rationale(statement, _scene())
    assert [s.verdict for s in check.statements] == ["false"]
    assert check.faithfulness == 0.0


def test_faithfulness_is_the_share_of_true_statements_unreadable_counted_as_not_true():
    text = ("there is a large red star. there is a small blue star. there are 3 stars. "
            "the stars look pretty. the red star is above the circle. the answer is 2.")
    check = check_rationale(text, _scene())
    # the answer statement is not part of the rationale: 5 statements, 3 true (worked by hand)
    assert [s.verdict for s in check.statements] == ["true", "true", "false", "unreadable", "true"]
    assert check.faithfulness == pytest.approx(3 / 5)


def test_each_mentioned_object_needs_its_own_object_in_the_scene():
    said = "there is a star. there is a star. there is a star."  # two stars in the scene
    assert check_rationale(said, _scene()).count("true") == 2
    # a vague mention must not take the object a precise one needs
    said = "there is a star. there is a large red star."
    assert check_rationale(said, _scene()).count("true") == 2


def test_objects_in_one_row_are_neither_above_nor_below():
    scene = Scene("natural", (SceneObject("square", "red", "small", cell_box(1, 0, "small", -1)),
                              SceneObject("cross", "blue", "small", cell_box(1, 2, "small", 1))))
    for relation in ("above", "below"):
        assert check_rationale(f"the square is {relation} the cross.", scene).faithfulness == 0.0


def test_decimal_points_do_not_split_statements():
    assert split_statements("the box is [0.12, 0.5]. the answer is 3.") == ["the box is [0.12, 0.5]", "the answer is 3"]


@pytest.mark.parametrize("task", sorted(RATIONALE_WRITERS))
def test_ground_truth_rationales_are_true_in_their_scenes_and_in_the_vocabulary(task):
    words = set(vocabulary())
    plain = get_world_task(task).samples("train", 60)
    with_rationales = rationale_samples(task, "train", 60)
    for before, sample in zip(plain, with_rationales):
        assert sample.messages == before.messages and sample.id == before.id  # the record is unchanged
        rationale = sample.meta["rationale"]
        check = check_rationale(f"{rationale} the answer is {sample.meta['answer']}.", sample.meta["scene"])
        assert check.statements and check.faithfulness == 1.0, rationale
        assert set(re.findall(r"[A-Za-z]+", rationale)) <= words, rationale


def test_counting_rationale_lists_the_objects_then_the_count():
    for sample in rationale_samples("iconqa", "train", 20):
        statements = split_statements(sample.meta["rationale"])
        n = int(sample.meta["answer"])
        assert len(statements) == n + 1
        assert all(s.startswith("there is a") for s in statements[:-1])
        assert re.fullmatch(rf"there (?:is 1|are {n}) \w+", statements[-1])


def test_scene_of_redraws_the_exact_scene_of_an_image_id():
    image_id, scene, _ = next(get_world_task("sciqa").scenes("test"))
    assert scene_of(image_id) == scene
    with pytest.raises(ValueError, match="not a world image id"):
        scene_of("nope")
