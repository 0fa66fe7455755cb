"""Text-only instructions over the world's lexicon (no image): keep the language model's
instruction following alive when multimodal batches dominate."""
from __future__ import annotations

import random

from mmtune.world.language import PLURALS, SHORT_ANSWER, TEMPLATES, TEXT_CATEGORIES, YES_NO
from mmtune.world.scenes import COLOURS, SHAPES, WORDS

KINDS = ("yes_no", "contains", "count", "repeat", "pick")


def text_instruction(rng: random.Random, weights: tuple[int, ...] = (2, 2, 2, 2, 2)) -> tuple[str, str]:
    """A (prompt, answer) pair about words only: repeat them, pick the colour/shape of two, say
    whether a word is a colour/shape or a list contains one (yes/no), or count a list's words (all
    of them, or one shape's).

    The yes/no and counting kinds are the language side a real LLM brings: without them the base
    answered the unseen image-text-matching prompt with shape words (500 of 500 unparsed), below
    chance for a reason that has nothing to do with the image. Likewise it answered IconQA's "How
    many stars are there?" with words (0 of 500 numbers) until half the shape counts were asked in
    that phrasing, after the list ("List: ... How many stars are there?"): a language model's prior
    that "how many" takes a number. Counting objects in an image is still never taught."""
    kind = rng.choices(KINDS, weights)[0]
    category = rng.choice(TEXT_CATEGORIES)
    members = list(COLOURS) if category == "colour" else list(SHAPES)
    if kind == "yes_no":
        word = rng.choice([*COLOURS, *SHAPES])
        return (f"{rng.choice(TEMPLATES['text_yes_no']).format(word=word, category=category)} {YES_NO}",
                "yes" if word in members else "no")
    if kind == "count" and rng.random() < 0.5:  # occurrences of one shape word among others
        shape, k = rng.choice(SHAPES), rng.randint(1, 5)
        words = [shape] * k + [rng.choice([w for w in (*COLOURS, *SHAPES) if w != shape]) for _ in range(rng.randint(0, 2))]
        rng.shuffle(words)
        prompt = rng.choice(TEMPLATES["text_count_kind"]).format(plural=PLURALS[shape], words=" ".join(words))
        return f"{prompt}\n{SHORT_ANSWER}", str(k)
    if kind in ("contains", "count"):
        words = [rng.choice([*COLOURS, *SHAPES, *WORDS]) for _ in range(rng.randint(1, 5))]
        listed = " ".join(words)
        if kind == "count":
            return f"{TEMPLATES['text_count'][0].format(words=listed)}\n{SHORT_ANSWER}", str(len(words))
        return (f"{TEMPLATES['text_contains'][0].format(category=category, words=listed)} {YES_NO}",
                "yes" if any(w in members for w in words) else "no")
    if kind == "repeat":
        words = " ".join(rng.choice([*COLOURS, *SHAPES, *WORDS]) for _ in range(rng.randint(2, 4)))
        return rng.choice(TEMPLATES["text_repeat"]).format(words=words), words
    other = rng.choice(list(SHAPES) if category == "colour" else list(COLOURS))
    right = rng.choice(members)
    a, b = (right, other) if rng.random() < 0.5 else (other, right)
    return rng.choice(TEMPLATES["text_pick"]).format(category=category, a=a, b=b), right
