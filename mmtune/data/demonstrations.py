"""In-context demonstrations: pick k solved examples for a query and compose one k-shot Sample.

A k-shot sample is one conversation: each demonstration as a user turn (its images, then its
question) followed by an assistant turn holding its answer, then the query's own turns. Every
family's chat template renders multi-turn conversations as it was trained to, the demonstration's
answer sits exactly where the model's answer will go, and no extra words ("Answer:") are needed,
which a closed vocabulary such as the world tokenizer's may not even have. Images follow the
order of the image parts: the demonstrations' in order, then the query's.

Selection here needs no model: ``random``, ``balanced`` (on the reference answer) and ``nearest``
over precomputed vectors (``bag_of_words`` for text; the evaluator adds the model's own pooled
image features). Each query's draw is seeded by (seed, query id), so a query gets the same
demonstrations whatever else is in the batch.
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence

from mmtune.data.sample import Sample, assistant_turn

SELECTIONS = ("random", "balanced", "nearest")
ORDERS = ("drawn", "permuted")
_WORD = re.compile(r"\w+")


def demonstration_answer(sample: Sample) -> str:
    """The answer a demonstration shows: its last assistant turn, else ``meta["answer"]``."""
    if sample.messages and sample.messages[-1]["role"] == "assistant":
        answer = Sample(sample.id, sample.messages[-1:]).text_of("assistant")[0].strip()
        if answer:
            return answer
    if isinstance(sample.meta.get("answer"), str) and sample.meta["answer"].strip():
        return sample.meta["answer"].strip()
    raise ValueError(f"record {sample.id!r} cannot be a demonstration: it has no assistant answer and no "
                     "meta answer; give demonstrations as records that end with the answer")


def answer_class(sample: Sample) -> str:
    """The class a demonstration belongs to for balancing: its answer, lower-cased and stripped."""
    return demonstration_answer(sample).lower().rstrip(".").strip()


def question_text(sample: Sample) -> str:
    """The text of the user turns a model is asked (what text similarity compares)."""
    return " ".join(Sample(sample.id, sample.prompt_messages()).text_of("user"))


def bag_of_words(texts: Sequence[str]) -> list[Counter]:
    """Lower-cased word counts of each text, the vectors of ``nearest`` by text."""
    return [Counter(_WORD.findall(t.lower())) for t in texts]


def cosine(a: Counter | Sequence[float], b: Counter | Sequence[float]) -> float:
    """Cosine similarity of two word-count vectors or two dense vectors; 0 when either is zero."""
    if isinstance(a, Counter):
        dot = sum(v * b.get(w, 0) for w, v in a.items())
        na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    else:
        dot = sum(x * y for x, y in zip(a, b))
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def candidates(query: Sample, pool: Sequence[Sample]) -> list[int]:
    """Indices of ``pool`` that may show ``query``: never itself, nor another question on its image."""
    image = query.meta.get("image_id")
    return [i for i, s in enumerate(pool)
            if s.id != query.id and (image is None or s.meta.get("image_id") != image)]


def draw_random(allowed: Sequence[int], k: int, rng: random.Random) -> list[int]:
    return rng.sample(list(allowed), k)


def draw_balanced(allowed: Sequence[int], classes: Sequence[str], k: int, rng: random.Random) -> list[int]:
    """k indices whose answer classes are as even as possible (counts differ by at most one).

    Classes are visited in a seeded random order, round after round, each time taking an unused
    member at random; a class with no member left drops out.
    """
    members: dict[str, list[int]] = {}
    for i in allowed:
        members.setdefault(classes[i], []).append(i)
    for group in members.values():
        rng.shuffle(group)
    order = sorted(members)
    rng.shuffle(order)
    picked: list[int] = []
    while len(picked) < k:
        for c in order:
            if members[c] and len(picked) < k:
                picked.append(members[c].pop())
        order = [c for c in order if members[c]]
    return picked


def draw_nearest(allowed: Sequence[int], similarity: Sequence[float], k: int) -> list[int]:
    """The k most similar indices, least similar first so the nearest sits next to the query
    (KATE's "reversed" order, Liu et al. 2022); ties go to the earlier pool index."""
    best = sorted(allowed, key=lambda i: (-similarity[i], i))[:k]
    return best[::-1]


def select(
    query: Sample, pool: Sequence[Sample], k: int, *, rule: str = "random", order: str = "drawn", seed: int = 0,
    similarity: Sequence[float] | None = None,
) -> list[Sample]:
    """k demonstrations for ``query`` from ``pool`` by ``rule``, in ``order`` (``permuted``: shuffled).

    ``similarity`` (one value per pool sample) is what ``nearest`` ranks by; ``seed`` seeds the
    draw and the permutation together with the query's id.
    """
    if rule not in SELECTIONS:
        raise ValueError(f"unknown demonstration selection {rule!r}; use one of {', '.join(SELECTIONS)}")
    if order not in ORDERS:
        raise ValueError(f"unknown demonstration order {order!r}; use one of {', '.join(ORDERS)}")
    allowed = candidates(query, pool)
    if len(allowed) < k:
        raise ValueError(f"sample {query.id!r}: {k} demonstrations asked for but only {len(allowed)} records can "
                         "show it; give a larger demonstration pool or fewer shots")
    rng = random.Random(f"{seed}|{query.id}")
    if rule == "random":
        picked = draw_random(allowed, k, rng)
    elif rule == "balanced":
        picked = draw_balanced(allowed, [answer_class(s) for s in pool], k, rng)
    else:
        if similarity is None or len(similarity) != len(pool):
            raise ValueError("nearest selection needs one similarity value per pool record")
        picked = draw_nearest(allowed, similarity, k)
    if order == "permuted":
        random.Random(f"{seed}|{query.id}|order").shuffle(picked)
    return [pool[i] for i in picked]


def compose(query: Sample, demonstrations: Sequence[Sample]) -> Sample:
    """One k-shot Sample: each demonstration's question turns and its answer, then the query's turns.

    The query's system message (if any) opens the conversation; demonstrations' system messages are
    dropped. The result keeps the query's id and meta and lists the demonstration ids, in order,
    under ``meta["demonstrations"]``.
    """
    system = [m for m in query.messages if m["role"] == "system"]
    messages: list[dict] = list(system)
    images: list = []
    for demo in demonstrations:
        asked = [m for m in demo.prompt_messages() if m["role"] != "system"]
        messages.extend(asked)
        messages.append(assistant_turn(demonstration_answer(demo)))
        images.extend(demo.images[:Sample(demo.id, asked).num_image_parts])
    messages.extend(m for m in query.messages if m["role"] != "system")
    meta = {**query.meta, "demonstrations": [d.id for d in demonstrations]}
    return Sample(id=query.id, messages=messages, images=images + list(query.images), meta=meta)


def with_demonstrations(samples: Sequence[Sample], k: int, *, rule: str = "random", order: str = "drawn",
                        seed: int = 0) -> list[Sample]:
    """Each sample turned k-shot with demonstrations drawn from the same ``samples`` (ICL tuning).

    ``nearest`` ranks by the bag-of-words similarity of the questions here (no model at hand).
    """
    if k <= 0:
        return list(samples)
    vectors = bag_of_words([question_text(s) for s in samples]) if rule == "nearest" else None
    out = []
    for query in samples:
        similarity = None
        if vectors is not None:
            query_vector = bag_of_words([question_text(query)])[0]
            similarity = [cosine(query_vector, v) for v in vectors]
        out.append(compose(query, select(query, samples, k, rule=rule, order=order, seed=seed, similarity=similarity)))
    return out
