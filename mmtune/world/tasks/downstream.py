"""Downstream tasks: tuning targets never seen in pre-training (ScienceQA-style multiple choice,
IconQA counting, RefCOCO grounding, image-text matching, remote-sensing VQA in the aerial domain).

Each asks for something the seen tasks never teach (vertical position, counts, coordinates,
relations in captions, the aerial domain), so the pre-trained base is near chance zero-shot.
"""
from __future__ import annotations

import random

from mmtune.world.language import (
    EDGES,
    LETTERS,
    MC_INSTRUCTION,
    PLURALS,
    RELATIONS,
    SHORT_ANSWER,
    TEMPLATES,
    YES_NO,
)
from mmtune.world.scenes import IMAGE_SIZE, SHAPES, sample_scene
from mmtune.world.tasks import Item, WorldTask, register_world_task
from mmtune.world.tasks.seen import MIN_GAP, unique_by

MAX_COUNT = 5


def make_sciqa(rng: random.Random):
    """Options are shape names, so a base that answers with a shape word is parsed (by option
    text) and scores near chance instead of failing the unseen letter format outright."""
    scene = sample_scene(rng, n_objects=(3, 4), word_prob=0.0)
    names = [o.kind for o in scene.objects]
    if len(set(names)) < len(names):
        return None
    edge = rng.choice(EDGES)
    ranked = sorted(scene.objects, key=lambda o: o.centre[1], reverse=edge == "bottom")
    if abs(ranked[1].centre[1] - ranked[0].centre[1]) < MIN_GAP:
        return None
    answer = ranked[0].kind
    names += rng.sample([s for s in SHAPES if s not in names], len(LETTERS) - len(names))
    rng.shuffle(names)
    options = "\n".join(f"{letter}. {name}" for letter, name in zip(LETTERS, names))
    prompt = f"{TEMPLATES['sciqa'][0].format(edge=edge)}\n{options}\n{MC_INSTRUCTION}"
    return scene, [Item(prompt, LETTERS[names.index(answer)], {"choices": names})]


def make_iconqa(rng: random.Random):
    target = rng.choice(SHAPES)
    k = rng.randint(1, MAX_COUNT)
    others = [rng.choice([s for s in SHAPES if s != target]) for _ in range(rng.randint(0, 2))]
    scene = sample_scene(rng, n_objects=(k + len(others),) * 2, word_prob=0.0, shapes=[target] * k + others)
    count = len(scene.of_kind(target))
    prompt = rng.choice(TEMPLATES["iconqa"]).format(plural=PLURALS[target])
    return scene, [Item(f"{prompt}\n{SHORT_ANSWER}", str(count))]


def make_refcoco(rng: random.Random):
    scene = sample_scene(rng, n_objects=(2, 4), word_prob=0.0)
    unique = [o for o in scene.objects
              if sum((p.colour, p.kind) == (o.colour, o.kind) for p in scene.objects) == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    box = [round(v / IMAGE_SIZE, 2) for v in o.box]
    text = "[" + ", ".join(f"{v:.2f}" for v in box) + "]"
    prompt = TEMPLATES["refcoco"][0].format(phrase=f"{o.colour} {o.kind}")
    return scene, [Item(prompt, text, {"box": box})]


def make_itm(rng: random.Random):
    scene = sample_scene(rng, n_objects=(2, 3), word_prob=0.0)
    objs = unique_by(scene, "kind")
    pairs = [(a, b) for a in objs for b in objs if b.centre[1] - a.centre[1] >= MIN_GAP]
    if not pairs:
        return None
    upper, lower = rng.choice(pairs)
    a, b = (upper, lower) if rng.random() < 0.5 else (lower, upper)
    truth = RELATIONS[0] if a is upper else RELATIONS[1]
    matches = rng.random() < 0.5
    relation = truth if matches else next(r for r in RELATIONS if r != truth)
    caption = TEMPLATES["itm_caption"][0].format(a=f"{a.colour} {a.kind}", relation=relation, b=f"{b.colour} {b.kind}")
    prompt = f"{TEMPLATES['itm'][0].format(caption=caption)} {YES_NO}"
    return scene, [Item(prompt, "yes" if matches else "no")]


def make_rsvqa(rng: random.Random):
    """Balanced yes/no: draw the wanted answer first, then an aerial scene that has it."""
    want_yes = rng.random() < 0.5
    kind = rng.choice(("building", "field", "water", "road", "compare"))
    for _ in range(30):
        scene = sample_scene(rng, "aerial")
        if kind == "compare":
            truth = len(scene.of_kind("building")) > len(scene.of_kind("field"))
            prompt = TEMPLATES["rsvqa_compare"][0]
        else:
            truth = bool(scene.of_kind(kind))
            art = "" if kind == "water" else "a"
            prompt = " ".join(TEMPLATES["rsvqa_presence"][0].format(article=art, kind=kind).split())
        if truth == want_yes:
            return scene, [Item(f"{prompt} {YES_NO}", "yes" if truth else "no", {"question_type": kind})]
    return None


# Chance: a uniform guess over 4 letters, 5 counts, yes/no. Grounding: share of test boxes hit
# (IoU >= 0.5) by the best constant box, searched on 2000 test samples (tests/world re-checks it).
GROUNDING_CHANCE = 7.2
for _task in (
    WorldTask("sciqa", False, "multiple_choice", 25.0, "ScienceQA-style lettered choices: which shape is highest/lowest", make_sciqa),
    WorldTask("iconqa", False, "counting", 100 / MAX_COUNT, "IconQA-style counting of one shape among distractors", make_iconqa),
    WorldTask("refcoco", False, "grounding", GROUNDING_CHANCE, "RefCOCO-style box of a referred object, [0,1] coords", make_refcoco),
    WorldTask("itm", False, "yesno", 50.0, "image-text matching: does an above/below caption fit?", make_itm),
    WorldTask("rsvqa", False, "yesno", 50.0, "remote-sensing VQA on aerial scenes (presence, comparison)", make_rsvqa),
):
    register_world_task(_task)
