"""Interleaved multi-image documents for pre-training, the world's stand-in for the web documents
OpenFlamingo (MMC4) and Idefics (OBELICS) add to image-text pairs so that a model learns to use
several images and the text between them, the ability in-context learning needs.

Two kinds, each a multi-turn conversation (loss on the answers only, as in all world pre-training):
fast-binding episodes naming shapes with ``binding.TRAIN_NAMES`` (one to ``MAX_SHOTS`` demonstrations,
then one to three queries), documents of two or three scenes, each captioned in turn, and text-only
instructions that repeat names.
"""
from __future__ import annotations

import itertools
import random

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.world.language import TEMPLATES
from mmtune.world.scenes import render
from mmtune.world.tasks.binding import MAX_SHOTS, TEST_NAMES, TRAIN_NAMES, episode

MAX_QUERIES = 3  # queries per training episode: each one more answer for one more image
# Episodes with more demonstrations are drawn more often: at k = 1 copying the one name shown is
# enough, from k = 2 on only binding is.
SHOT_WEIGHTS = (1, 2, 2, 3)


def binding_documents(n: int, seed: int = 0) -> list[Sample]:
    """``n`` fast-binding episodes with training names, k from 1 to ``MAX_SHOTS`` by ``SHOT_WEIGHTS``."""
    out = []
    for i in range(n):
        rng = random.Random(f"binding-documents|{seed}|{i}")
        k = rng.choices(range(1, MAX_SHOTS + 1), SHOT_WEIGHTS)[0]
        messages, scenes, answers = episode(rng, k, TRAIN_NAMES, queries=rng.randint(1, MAX_QUERIES))
        out.append(Sample(id=f"binding-document-{seed}-{i}", messages=messages, images=[render(s) for s in scenes],
                          meta={"task": "binding_document", "answer": answers[0], "k": k}))
    return out


def caption_documents(n: int, seed: int = 0) -> list[Sample]:
    """``n`` documents of two or three training scenes of the caption task, each image followed by
    its caption: which image a caption is about is the latest one, not the first."""
    from mmtune.world.tasks import get_world_task

    scenes = get_world_task("caption").scenes("train", seed)
    out = []
    for i in range(n):
        size = random.Random(f"caption-documents|{seed}|{i}").randint(2, 3)
        messages, images = [], []
        for _, scene, (item, *_) in itertools.islice(scenes, size):
            messages += [user_turn(item.prompt), assistant_turn(item.answer)]
            images.append(render(scene))
        out.append(Sample(id=f"caption-document-{seed}-{i}", messages=messages, images=images,
                          meta={"task": "caption_document", "answer": messages[-1]["content"][0]["text"]}))
    return out


def name_repeats(n: int, seed: int = 0) -> list[Sample]:
    """``n`` text-only "Repeat these words: ..." instructions over every name, training and test.

    A language model can write back any word it is shown, and binding needs that: after training
    episodes alone, the base answered test episodes with training names (it had learnt which words
    are names). The world's text instructions repeat only colours, shapes and the printed words; these
    cover every name. No test name is ever bound to a shape here."""
    out = []
    for i in range(n):
        rng = random.Random(f"name-repeats|{seed}|{i}")
        words = " ".join(rng.choice((*TRAIN_NAMES, *TEST_NAMES)) for _ in range(rng.randint(1, 4)))
        out.append(Sample(id=f"name-repeat-{seed}-{i}", messages=[
            user_turn(TEMPLATES["text_repeat"][0].format(words=words), n_images=0), assistant_turn(words)],
            meta={"task": "name_repeat", "answer": words}))
    return out
