"""Interleaved multi-image documents for pre-training, the world's stand-in for the web documents
OpenFlamingo (MMC4) and Idefics (OBELICS) add to image-text pairs so that a model learns to use
several images and the text between them, the ability in-context learning needs.

Two kinds, each a multi-turn conversation (loss on the answers only, as in all world pre-training):
fast-binding episodes naming shapes with ``binding.TRAIN_NAMES`` (one to ``MAX_SHOTS`` demonstrations,
then one to three queries), and documents of two or three scenes, each captioned in turn.
"""
from __future__ import annotations

import itertools
import random

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.world.scenes import render
from mmtune.world.tasks.binding import MAX_SHOTS, TRAIN_NAMES, episode

MAX_QUERIES = 3  # queries per training episode: each one more answer for one more image


def binding_documents(n: int, seed: int = 0) -> list[Sample]:
    """``n`` fast-binding episodes with training names, k drawn uniformly from 1 to ``MAX_SHOTS``."""
    out = []
    for i in range(n):
        rng = random.Random(f"binding-documents|{seed}|{i}")
        k = rng.randint(1, MAX_SHOTS)
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
