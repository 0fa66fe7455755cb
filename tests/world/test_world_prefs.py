"""Injected preference pairs on the world: checked against the exact scene, the chosen response
states the scene and the rejected one states exactly one false fact of the recorded kind."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from mmtune.data.preferences import read_preferences, write_preferences
from mmtune.world.prefs import HALLUCINATIONS, injected_pairs
from mmtune.world.scenes import IMAGE_SIZE, render, world_variant
from mmtune.world.tasks import get_world_task
from mmtune.world.tasks.seen import captions

# "a large red circle on the left": what a world description says about one object.
OBJECT = re.compile(r"\ban? (small|large) (\w+) (\w+) on the (left|right)\b")


def stated(text: str) -> Counter:
    return Counter(OBJECT.findall(text))


def truth(scene) -> Counter:
    return Counter((o.size, o.colour, o.kind, "left" if o.centre[0] < IMAGE_SIZE / 2 else "right")
                   for o in scene.objects)


def scenes_of(task: str, n: int = 200) -> dict:
    out = {}
    for image_id, scene, _ in get_world_task(task).scenes("train", 0):
        out[f"{image_id}-injected"] = scene
        if len(out) >= n:
            return out


@pytest.fixture(scope="module")
def describe_pairs():
    return injected_pairs("describe", n=40)


def test_chosen_states_the_scene_and_rejected_one_false_fact(describe_pairs):
    scenes = scenes_of("describe")
    for pref in describe_pairs:
        scene = scenes[pref.id]
        injected = pref.meta["construction"]["injected"][0]
        said, real = stated(pref.rejected), truth(scene)
        assert stated(pref.chosen) == real, pref.chosen
        assert pref.images[0].tobytes() == render(scene).tobytes()
        kinds_present = {o.kind for o in scene.objects}
        if injected["type"] == "object":
            # one object more, of a kind the image does not hold
            assert said - real and all(k not in kinds_present for _, _, k, _ in (said - real))
            assert {k for _, _, k, _ in said - real} == {injected["object"]} and not real - said
        elif injected["type"] == "attribute":
            (size, colour, kind, side), = (said - real).elements()
            assert (kind, colour) == (injected["object"], injected["injected"]) and colour != injected["true"]
            assert sum(said.values()) == sum(real.values())
        elif injected["type"] == "count":
            count = sum(n for (_, _, k, _), n in said.items() if k == injected["object"])
            assert count == len(scene.of_kind(injected["object"])) + 1 == injected["injected"]
        else:
            (size, colour, kind, side), = (said - real).elements()
            assert f"{size} {colour} {kind}" == injected["object"] and side == injected["injected"] != injected["true"]
            assert sum(said.values()) == sum(real.values())


def test_every_kind_of_hallucination_is_made_about_equally_often(describe_pairs):
    made = Counter(p.meta["construction"]["injected"][0]["type"] for p in describe_pairs)
    assert set(made) == set(HALLUCINATIONS) and min(made.values()) >= 6, made
    assert all(p.meta["construction"]["method"] == "injected" and p.meta["construction"]["seed"] == 0
               for p in describe_pairs)


def test_injected_objects_are_usual_companions_in_the_cooccurrence_world():
    with world_variant("cooc") as variant:
        pairs = injected_pairs("describe", n=40, kinds=["object"])
    for pref in pairs:
        injected = pref.meta["construction"]["injected"][0]
        present = pref.meta["construction"]["objects"]
        absent_companions = {variant.companion(k) for k in present} - set(present)
        if absent_companions:  # the companion of a present kind, when one is missing
            assert injected["object"] in absent_companions
            assert injected["companion_of"] and all(variant.companion(k) == injected["object"]
                                                    for k in injected["companion_of"])
        assert injected["object"] not in present


def test_caption_pairs_and_determinism():
    scenes = scenes_of("caption")
    pairs = injected_pairs("caption", n=12, seed=0)
    again = injected_pairs("caption", n=12, seed=0)
    assert [(p.id, p.chosen, p.rejected) for p in pairs] == [(p.id, p.chosen, p.rejected) for p in again]
    for pref in pairs:
        assert pref.chosen == captions(scenes[pref.id])[0] != pref.rejected


def test_pairs_round_trip_through_the_preference_file(describe_pairs, tmp_path):
    write_preferences(tmp_path / "pairs.jsonl", describe_pairs[:5])
    back = read_preferences(tmp_path / "pairs.jsonl")
    assert [(p.chosen, p.rejected, p.meta) for p in back] == [(p.chosen, p.rejected, p.meta) for p in describe_pairs[:5]]


def test_unknown_task_or_kind_is_named():
    with pytest.raises(ValueError, match="world task 'vqa' has no response writer"):
        injected_pairs("vqa", n=1)
    with pytest.raises(ValueError, match="unknown hallucination kinds \\['size'\\]"):
        injected_pairs("describe", n=1, kinds=["size"])
