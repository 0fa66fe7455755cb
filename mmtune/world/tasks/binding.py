"""Fast binding (Frozen, Tsimpoukelli et al. 2021): names bound to shapes only by the demonstrations.

An episode is one interleaved multi-image prompt in Frozen's layout, "<image> this is a dax. <image>
this is a blicket. <image> What is this?", whose k demonstrations each show one shape and then name
it, and whose query shows one of those shapes again as a different instance (another colour and
cell, any size). The answer is the name bound to the query's shape in this episode; the binding is
drawn afresh for each episode, so no weight can hold it and only the context can tell it (at k = 0
nothing can).

The names are words the world's tokenizer already has (a new word would change the tokenizer and
every cached base) that name nothing in a scene. Training episodes bind ``TRAIN_NAMES``; evaluation
binds ``TEST_NAMES`` (the printed OCR words), never bound in pre-training.
"""
from __future__ import annotations

import random

from mmtune.data.sample import Sample, assistant_turn
from mmtune.world.language import SHORT_ANSWER
from mmtune.world.scenes import SHAPES, Scene, render, sample_scene
from mmtune.world.scenes import WORDS as TEST_NAMES
from mmtune.world.tasks.seen import article

# Vocabulary words naming no shape, colour, size, place or count, and none of the prompt's own words
# ("this", "is", "a", "an", "What", and SHORT_ANSWER's), so the only word a demonstration adds is
# its name. Many of them, of every sort, so that what is learnt is to copy a name, not which words are names.
TRAIN_NAMES = (
    "Are", "Caption", "Count", "Describe", "Does", "How", "Is", "List", "On", "Please", "Read", "Repeat",
    "Which", "Write", "aerial", "and", "are", "bounding", "briefly", "caption", "choices", "closest",
    "contain", "coordinate", "describes", "directly", "does", "for", "from", "given", "have", "image", "in",
    "letter", "list", "many", "match", "more", "of", "on", "option", "picture", "provide", "region", "say",
    "sentence", "short", "show", "text", "than", "there", "these", "to", "which", "with", "words", "written",
)
NAMES = {"train": TRAIN_NAMES, "val": TEST_NAMES, "test": TEST_NAMES}
SHOTS = (0, 1, 2, 4)  # the evaluated numbers of demonstrations
MAX_SHOTS = 4  # one shape per demonstration, at most four: a k = 4 episode is 5 images, 80 image tokens
QUERY = "What is this?"


def chance(k: int) -> float:
    """A guesser's accuracy: one of the k names shown, or at k = 0 one of the test names."""
    return 100 / (k or len(TEST_NAMES))


def demonstration(name: str) -> str:
    return f"this is {article(name)}."


def _one_object(rng: random.Random, kind: str, unlike: Scene | None = None) -> Scene:
    """A scene of one ``kind`` object; given ``unlike``, another colour and another cell than its object."""
    while True:
        scene = sample_scene(rng, n_objects=(1, 1), word_prob=0.0, shapes=[kind])
        if unlike is None:
            return scene
        (a,), (b,) = unlike.objects, scene.objects
        if a.colour != b.colour and a.box != b.box:
            return scene


def episode(rng: random.Random, k: int, names: tuple[str, ...], *, queries: int = 1) -> tuple[list[dict], list[Scene], list[str]]:
    """One episode: (messages, scenes in the order of the image parts, the name of each query).

    k shapes get k distinct names; each query shows one of them (k = 0: a shape bound to a name no
    demonstration gives). The first user turn holds the demonstrations and the first query; each
    further query is a turn of its own ("<image> What is this?"), answered from the same demonstrations.
    """
    if not 0 <= k <= MAX_SHOTS or (k == 0 and queries != 1):
        raise ValueError(f"fast binding: k={k} (queries={queries}); use 0 <= k <= {MAX_SHOTS}, one query at k = 0")
    kinds = rng.sample(SHAPES, max(k, 1))
    bound = dict(zip(kinds, rng.sample(names, len(kinds))))
    demos = [_one_object(rng, kind) for kind in kinds[:k]]
    content: list[dict] = []
    for kind in kinds[:k]:
        content += [{"type": "image"}, _text(f" {demonstration(bound[kind])} ")]
    messages: list[dict] = []
    scenes, answers = list(demos), []
    for _ in range(queries):
        i = rng.randrange(len(kinds))
        content += [{"type": "image"}, _text(f" {QUERY}\n{SHORT_ANSWER}")]
        messages += [{"role": "user", "content": content}, assistant_turn(bound[kinds[i]])]
        scenes.append(_one_object(rng, kinds[i], unlike=demos[i] if k else None))
        answers.append(bound[kinds[i]])
        content = []
    return messages, scenes, answers


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def binding_samples(split: str, n: int, k: int, seed: int = 0) -> list[Sample]:
    """``n`` single-query episodes with ``k`` demonstrations, naming with ``split``'s names."""
    if split not in NAMES:
        raise ValueError(f"fast binding: unknown split {split!r}; use one of {tuple(NAMES)}")
    out = []
    for i in range(n):
        messages, scenes, answers = episode(random.Random(f"binding|{split}|{k}|{seed}|{i}"), k, NAMES[split])
        out.append(Sample(
            id=f"binding-k{k}-{split}-{seed}-{i}", messages=messages, images=[render(s) for s in scenes],
            meta={"task": "binding", "answer": answers[0], "k": k, "kinds": [s.objects[0].kind for s in scenes]},
        ))
    return out
