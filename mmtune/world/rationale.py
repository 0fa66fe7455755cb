"""Ground-truth rationales for the world's downstream tasks, and an exact checker of any rationale.

A rationale is a few short statements the scene makes true, written before the answer
(Multimodal-CoT): counting lists the objects found, then their count; sciqa says which options
are absent and how the answer's shape lies against each other one; rsvqa gives the counts it
compares; itm states the true relation. Every word is in the world's vocabulary, so rationales
need no new tokens (a new word would change the tokenizer and with it every cached base).

``check_rationale`` reads any text with the same small grammar and judges each statement against
the scene exactly; what it cannot read is reported as unreadable, never silently dropped.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from mmtune.data.sample import Sample
from mmtune.world.language import PLURALS
from mmtune.world.scenes import AERIAL_KINDS, COLOURS, SHAPES, SIZES, Scene, SceneObject
from mmtune.world.tasks import get_world_task
from mmtune.world.tasks.seen import MIN_GAP

ANSWER_STATEMENT = "the answer is {answer}."
KINDS = (*SHAPES, *AERIAL_KINDS)
_SINGULAR = {plural: kind for kind, plural in PLURALS.items()}
_NO_ARTICLE = ("water",)  # "there is water", not "there is a water"
_AT_MOST_ONE = ("water", "road")  # an aerial scene has one of these or none: said without a number


# -- writing rationales -----------------------------------------------------------------------
def _there_is(obj: SceneObject) -> str:
    article = "" if obj.kind in _NO_ARTICLE else ("an " if obj.phrase[0] in "aeiou" else "a ")
    return f"there is {article}{obj.phrase}."


def _count(kind: str, n: int) -> str:
    if n == 0:
        return f"there is no {kind}."
    if kind in _AT_MOST_ONE:
        return f"there is {'' if kind in _NO_ARTICLE else 'a '}{kind}."
    return f"there is 1 {kind}." if n == 1 else f"there are {n} {PLURALS[kind]}."


def _reading_order(objects) -> list[SceneObject]:
    return sorted(objects, key=lambda o: (o.centre[1], o.centre[0]))


def _word_in(prompt: str, words) -> str:
    first_line = prompt.split("\n", 1)[0]
    found = [w for w in words if re.search(rf"\b{w}\b", first_line)]
    if len(found) != 1:
        raise ValueError(f"cannot tell which of {list(words)} the question {first_line!r} asks about")
    return found[0]


def _counting(scene: Scene, prompt: str, meta: dict) -> list[str]:
    kind = _SINGULAR[_word_in(prompt, [PLURALS[s] for s in SHAPES])]
    found = _reading_order(scene.of_kind(kind))
    return [*(_there_is(o) for o in found), _count(kind, len(found))]


def _highest_or_lowest(scene: Scene, prompt: str, meta: dict) -> list[str]:
    edge = _word_in(prompt, ("top", "bottom"))
    relation = "above" if edge == "top" else "below"
    present = {o.kind: o for o in scene.objects}
    winner = min(scene.objects, key=lambda o: o.centre[1] if edge == "top" else -o.centre[1])
    absent = [f"there is no {c}." for c in meta["choices"] if c not in present]
    beats = [f"the {winner.kind} is {relation} the {o.kind}." for o in _reading_order(scene.objects) if o is not winner]
    return [*absent, *beats, f"the {winner.kind} is closest to the {edge} of the image."]


def _aerial_counts(scene: Scene, prompt: str, meta: dict) -> list[str]:
    kind = meta["question_type"]
    kinds = ("building", "field") if kind == "compare" else (kind,)
    return [_count(k, len(scene.of_kind(k))) for k in kinds]


_CAPTION = re.compile(r"Caption: the (\w+) (\w+) is (?:above|below) the (\w+) (\w+)\.")


def _caption_relation(scene: Scene, prompt: str, meta: dict) -> list[str]:
    m = _CAPTION.search(prompt)
    if m is None:
        raise ValueError(f"no 'Caption: the A is above/below the B.' in the question {prompt!r}")
    a = next(o for o in scene.objects if (o.colour, o.kind) == m.group(1, 2))
    b = next(o for o in scene.objects if (o.colour, o.kind) == m.group(3, 4))
    relation = "above" if a.centre[1] < b.centre[1] else "below"
    return [f"the {a.colour} {a.kind} is {relation} the {b.colour} {b.kind}."]


RationaleWriter = Callable[[Scene, str, dict], "list[str]"]
# World task -> the statements its scene makes true for one question (prompt, sample meta).
RATIONALE_WRITERS: dict[str, RationaleWriter] = {
    "iconqa": _counting,
    "sciqa": _highest_or_lowest,
    "rsvqa": _aerial_counts,
    "itm": _caption_relation,
}


def write_rationale(task: str, scene: Scene, prompt: str, meta: dict) -> str:
    """The ground-truth rationale of one question of world ``task`` about ``scene``."""
    if task not in RATIONALE_WRITERS:
        raise ValueError(f"world task {task!r} has no rationale; tasks with one: {', '.join(RATIONALE_WRITERS)}")
    return " ".join(RATIONALE_WRITERS[task](scene, prompt, meta))


def scene_of(image_id: str) -> Scene:
    """The exact scene behind a world sample's ``meta["image_id"]`` ("iconqa-test-0-17"), redrawn
    from its seed (default world)."""
    try:
        name, split, seed, index = image_id.rsplit("-", 3)
        made = get_world_task(name).make(random.Random(f"{name}|{split}|{int(seed)}|{int(index)}"))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{image_id!r} is not a world image id like 'iconqa-test-0-17'") from e
    if made is None:
        raise ValueError(f"world image id {image_id!r} names a draw that made no scene")
    return made[0]


def with_rationale(sample: Sample) -> Sample:
    """A copy of a world sample with ``meta["rationale"]`` and ``meta["scene"]`` (for checking);
    its messages and answer are unchanged."""
    scene = scene_of(sample.meta["image_id"])
    rationale = write_rationale(sample.meta["task"], scene, sample.text_of("user")[-1], sample.meta)
    return replace(sample, meta={**sample.meta, "rationale": rationale, "scene": scene})


def rationale_samples(task: str, split: str, n: int, seed: int = 0) -> list[Sample]:
    """``n`` samples of world ``task`` (the same as ``samples(split, n, seed)``) with rationales."""
    return [with_rationale(s) for s in get_world_task(task).samples(split, n, seed)]


# -- checking rationales ------------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    """One sentence of a rationale and its verdict: "true", "false" or "unreadable"."""

    text: str
    verdict: str


@dataclass(frozen=True)
class RationaleCheck:
    statements: tuple[Statement, ...]

    def count(self, verdict: str) -> int:
        return sum(s.verdict == verdict for s in self.statements)

    @property
    def faithfulness(self) -> float | None:
        """Share of statements true in the scene (unreadable ones count as not true); None if none."""
        return self.count("true") / len(self.statements) if self.statements else None


_PHRASE = rf"((?:(?:{'|'.join(SIZES)}) )?(?:(?:{'|'.join(COLOURS)}) )?(?:{'|'.join(KINDS)}))"
_PATTERNS = {
    "answer": re.compile(r"the answer is .+"),
    "absent": re.compile(rf"there is no ({'|'.join(KINDS)})"),
    "count": re.compile(rf"there (?:is|are) (\d+) ({'|'.join([*KINDS, *_SINGULAR])})"),
    "exists": re.compile(rf"there is (?:an? )?{_PHRASE}"),
    "relation": re.compile(rf"the {_PHRASE} is (above|below) the {_PHRASE}"),
    "extreme": re.compile(rf"the {_PHRASE} is closest to the (top|bottom) of the image"),
}


def split_statements(text: str) -> list[str]:
    """Sentences of ``text``: split at a period followed by a space or the end ("0.5" stays whole)."""
    return [s.strip() for s in re.split(r"\.(?=\s|$)", text) if s.strip()]


def _matches(obj: SceneObject, phrase: str) -> bool:
    *attrs, kind = phrase.split()
    return obj.kind == kind and all(a in (obj.size, obj.colour) for a in attrs)


def _y(obj: SceneObject) -> float:
    return obj.centre[1]


def _judge(kind: str, groups: tuple[str, ...], scene: Scene) -> bool:
    objs = scene.objects
    if kind == "absent":
        return not scene.of_kind(groups[0])
    if kind == "count":
        return len(scene.of_kind(_SINGULAR.get(groups[1], groups[1]))) == int(groups[0])
    if kind == "relation":
        # as the tasks ask it: centres at least MIN_GAP pixels apart, so one row is neither
        a_phrase, relation, b_phrase = groups
        sign = 1 if relation == "above" else -1
        return any(sign * (_y(b) - _y(a)) >= MIN_GAP
                   for a in objs if _matches(a, a_phrase) for b in objs if b is not a and _matches(b, b_phrase))
    phrase, edge = groups  # extreme: strictly nearest that edge of all objects
    sign = 1 if edge == "top" else -1
    return any(all(sign * (_y(o) - _y(a)) > 0 for o in objs if o is not a) for a in objs if _matches(a, phrase))


def _match_objects(phrases: list[str], scene: Scene) -> int:
    """How many "there is a X" statements distinct scene objects can make true at once (a maximum
    bipartite matching): saying "there is a star" twice needs two stars."""
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j, obj in enumerate(scene.objects):
            if j not in seen and _matches(obj, phrases[i]):
                seen.add(j)
                if j not in owner or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(assign(i, set()) for i in range(len(phrases)))


def check_rationale(text: str, scene: Scene) -> RationaleCheck:
    """Each statement of ``text`` (the answer statement left out) judged exactly against ``scene``."""
    verdicts: list[tuple[str, str | None]] = []
    exists: list[tuple[int, str]] = []
    for sentence in split_statements(text):
        said = re.sub(r"\s+", " ", sentence.lower())
        kind = next((k for k, rx in _PATTERNS.items() if rx.fullmatch(said)), None)
        if kind == "answer":
            continue
        if kind is None:
            verdicts.append((sentence, "unreadable"))
        elif kind == "exists":
            exists.append((len(verdicts), _PATTERNS["exists"].fullmatch(said).group(1)))
            verdicts.append((sentence, None))
        else:
            truth = _judge(kind, _PATTERNS[kind].fullmatch(said).groups(), scene)
            verdicts.append((sentence, "true" if truth else "false"))
    # Which of several equal mentions is the false one is arbitrary; the count of true ones is exact.
    matched = _match_objects([p for _, p in exists], scene)
    for rank, (index, _) in enumerate(exists):
        verdicts[index] = (verdicts[index][0], "true" if rank < matched else "false")
    return RationaleCheck(tuple(Statement(t, v) for t, v in verdicts))
