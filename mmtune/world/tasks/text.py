"""Text-only instructions over the world's lexicon (no image): keep the language model's
instruction following alive when multimodal batches dominate."""
from __future__ import annotations

import random

from mmtune.world.language import TEMPLATES, YES_NO
from mmtune.world.scenes import COLOURS, SHAPES, WORDS


def text_instruction(rng: random.Random) -> tuple[str, str]:
    """A (prompt, answer) pair: repeat a few words, pick the colour/shape among two words, or say
    whether a word is a colour/shape (so "Please answer yes or no." means yes/no beyond the seen
    tasks' own questions, e.g. for image-text matching zero-shot)."""
    roll = rng.random()
    if roll < 0.25:
        category = rng.choice(("colour", "shape"))
        word = rng.choice([*COLOURS, *SHAPES])
        answer = "yes" if (word in COLOURS) == (category == "colour") else "no"
        return f"{rng.choice(TEMPLATES['text_yes_no']).format(word=word, category=category)} {YES_NO}", answer
    if roll < 0.6:
        words = " ".join(rng.choice([*COLOURS, *SHAPES, *WORDS]) for _ in range(rng.randint(2, 4)))
        return rng.choice(TEMPLATES["text_repeat"]).format(words=words), words
    category = rng.choice(("colour", "shape"))
    right, wrong = (rng.choice(list(COLOURS)), rng.choice(SHAPES))
    if category == "shape":
        right, wrong = wrong, right
    a, b = (right, wrong) if rng.random() < 0.5 else (wrong, right)
    return rng.choice(TEMPLATES["text_pick"]).format(category=category, a=a, b=b), right
