"""The describe task and the world variant that makes a base hallucinate: exact references, the
co-occurrence and noise rates a variant promises, and a default world left exactly as it was."""
import hashlib
import json
import math
import random
import re

import pytest

from mmtune.eval.metrics.hallucination import extract_objects, world_vocabulary
from mmtune.world.language import SIDES
from mmtune.world.scenes import WORLD_VARIANTS, world_variant
from mmtune.world.tasks import get_world_task
from mmtune.world.tasks.seen import make_caption, make_describe, make_mme, make_pope, on_left_half

COOC = WORLD_VARIANTS["cooc"]
VOCAB = world_vocabulary()


def made(maker, n, salt="t"):
    """``n`` (scene, items) drawn by ``maker`` with seeded generators (makers may redraw: None)."""
    out, i = [], 0
    while len(out) < n:
        if (m := maker(random.Random(f"{salt}|{i}"))) is not None:
            out.append(m)
        i += 1
    return out


def named_objects(text):
    """(size, colour, shape, side) of each object a description lists."""
    return re.findall(r"an? (small|large) (\w+) (\w+) on the (left|right)", text)


def assert_names_exactly(scene, item):
    objs = sorted(scene.objects, key=lambda o: o.centre[0])
    assert named_objects(item.answer) == [(o.size, o.colour, o.kind, SIDES[not on_left_half(o)]) for o in objs]
    count = re.match(r"there (?:is|are) (\d) objects? in the image: ", item.answer)
    assert count and int(count[1]) == len(objs)
    assert ("the word" in item.answer) == bool(scene.word)
    kinds = sorted(o.kind for o in scene.objects)
    assert item.meta["objects"] == sorted(set(kinds))
    for reference in item.meta["captions"]:
        assert sorted(extract_objects(reference, VOCAB)) == kinds, reference


def test_describe_references_name_exactly_the_scene_objects():
    for scene, [item] in made(make_describe, 200):
        assert_names_exactly(scene, item)
        assert item.answer == item.meta["captions"][0]
        assert "named_absent" not in item.meta  # the default world adds no noise key


def test_variant_evaluation_references_are_exact():
    with world_variant("cooc", noisy=False):
        for scene, [item] in made(make_describe, 200):
            assert_names_exactly(scene, item)
            assert item.meta["named_absent"] == []


def within(rate, p, n):
    """``rate`` over ``n`` Bernoulli(p) draws is within 4 standard errors of ``p``."""
    return abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_variant_pairs_cooccur_at_their_setting():
    touched = complete = 0
    with world_variant("cooc"):
        for maker in (make_caption, make_describe, make_pope):
            for scene, _ in made(maker, 400, salt=maker.__name__):
                kinds = {o.kind for o in scene.objects}
                for pair in COOC.companions:
                    touched += bool(kinds & set(pair))
                    complete += set(pair) <= kinds
    assert touched > 1000 and within(complete / touched, COOC.cooccurrence, touched)


def test_noisy_texts_name_only_an_absent_companion_at_their_setting():
    could = noisy = 0
    with world_variant("cooc"):
        for maker in (make_caption, make_describe):
            for scene, [item] in made(maker, 600, salt=maker.__name__):
                present = [o.kind for o in scene.objects]
                absent_companions = COOC.absent_companions(scene)
                named = sorted(extract_objects(item.answer, VOCAB))
                if item.meta["named_absent"]:
                    [ghost] = item.meta["named_absent"]
                    assert ghost in absent_companions and ghost not in present
                    assert named == sorted([*present, ghost]), item.answer
                    noisy += 1
                else:
                    assert named == sorted(present), item.answer
                could += bool(absent_companions)
                if maker is make_describe:  # the ground truth stays the scene's, noise or not
                    assert item.meta["objects"] == sorted(set(present))
    assert could > 300 and within(noisy / could, COOC.noisy, could)


def test_noisy_existence_answers_say_yes_only_to_an_absent_companion():
    said_yes_absent = 0
    with world_variant("cooc"):
        for maker in (make_pope, make_mme):
            for scene, items in made(maker, 400, salt=maker.__name__):
                present = {o.kind for o in scene.objects}
                for item in items:
                    if not (m := re.match(r"Is there an? (\w+) in the image\?", item.prompt)):
                        continue
                    if m[1] in present:
                        assert item.answer == "yes"
                    elif item.answer == "yes":
                        assert m[1] in COOC.absent_companions(scene) and item.meta["named_absent"] == [m[1]]
                        said_yes_absent += 1
    assert said_yes_absent > 0


def test_variant_pope_adversarial_negatives_are_absent_companions():
    from mmtune.eval.task import get_task

    task = get_task("world_pope", split="test", n=40, variant="cooc", pope_split="adversarial")
    assert task.name == "world_pope_cooc_adversarial" and len(task.samples) == 40
    with world_variant("cooc", noisy=False):
        scenes = [(scene, items) for scene, items in made(make_pope, 300) if items[0].meta["pope_split"] == "adversarial"]
    for scene, items in scenes:
        [negative] = [re.match(r"Is there an? (\w+)", i.prompt)[1] for i in items if i.answer == "no"]
        assert negative in COOC.absent_companions(scene)
    assert {s.meta["answer"] for s in task.samples} == {"yes", "no"}


def test_pope_split_option_names_the_task_and_choices():
    from mmtune.eval.task import get_task

    with pytest.raises(ValueError, match="pope_split='hard' needs world_pope and one of random, popular, adversarial"):
        get_task("world_pope", n=4, pope_split="hard")
    with pytest.raises(ValueError, match="unknown world variant 'cooccur'"):
        get_task("world_describe", n=4, variant="cooccur")


def sample_hash(samples):
    digest = hashlib.sha1()
    for s in samples:
        digest.update(json.dumps([s.id, s.messages, s.meta], sort_keys=True).encode())
        for image in s.images:
            digest.update(image.tobytes())
    return digest.hexdigest()[:16]


# The first 6 train samples (seed 0) of each seen task, hashed by sample_hash at commit 37024b3,
# before the describe task and world variants existed: the default base's data must not move.
DEFAULT_WORLD_HASHES = {"caption": "fa201fb9bc534998", "vqa": "280576f897845664", "gqa": "cbbcb77fa45c8877",
                        "ocr": "afb26b69b2d07e37", "mme": "3b67d71504f843bf", "pope": "0a83d187ad2daf48"}


def test_default_world_samples_and_base_key_are_unchanged():
    from mmtune.recipes.pretrain import base_model_dir, settings_hash

    for name, expected in DEFAULT_WORLD_HASHES.items():
        assert sample_hash(get_world_task(name).samples("train", 6, seed=0)) == expected, name
    assert settings_hash("quick") == "bcb8e58ba2"  # the key of the quick bases cached before variants
    assert base_model_dir("quick-cooc", 0).name.startswith("quick-cooc-seed0-")
    assert settings_hash("quick-cooc") != settings_hash("quick")


def test_only_a_variant_base_pretrains_on_noisy_texts_and_descriptions(monkeypatch):
    import dataclasses

    from mmtune.recipes import pretrain as pretrain_recipe

    micro = pretrain_recipe.PretrainPreset("tiny", 40, 2, 2, 1e-3, 12, 3e-3, 8)
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro", micro)
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro-cooc", dataclasses.replace(micro, world="cooc"))
    default = [s for part in pretrain_recipe.pretrain_samples("micro", 0) for s in part]
    variant = [s for part in pretrain_recipe.pretrain_samples("micro-cooc", 0) for s in part]
    assert not any(s.meta["task"] == "describe" or "named_absent" in s.meta for s in default)
    assert sum(s.meta["task"] == "describe" for s in variant) == 40 // pretrain_recipe.LONG_ANSWER_SHARE["describe"]
    assert any(s.meta.get("named_absent") for s in variant)
