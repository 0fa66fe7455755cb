"""Hallucination injection on real images (POVID / HA-DPO style): the correct response is the
chosen side, the same response with an object that is not in the image is the rejected side.

Ground truth comes from COCO-format instance annotations a user supplies (``instances_*.json``:
``images``, ``categories``, ``annotations``): the categories annotated on an image are present,
every other category is absent. Which absent category is injected follows POPE's three negative
samplings (Li et al. 2023): ``random``; ``popular``, the most frequent categories of the set;
``adversarial``, the categories that co-occur most often with the image's own -- the objects a
model that learnt co-occurrence is most likely to hallucinate.

The response keeps its style: a mention of a present category (its name, plural or a synonym
given by the caller) is replaced by the absent one, article and number kept in agreement; a
response that names no present category gets one sentence naming the absent object appended.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.data.preferences import Preference
from mmtune.data.sample import user_turn

NEGATIVE_SAMPLINGS = ("random", "popular", "adversarial")
DESCRIBE_PROMPT = "Describe the image in detail."
_IRREGULAR_PLURALS = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep", "bus": "buses"}
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def plural(name: str) -> str:
    """English plural of a category name ("wine glass" -> "wine glasses", "person" -> "people");
    names ending in a single s ("skis", "scissors") are their own plural."""
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        out = _IRREGULAR_PLURALS[last]
    elif last.endswith(("ss", "ch", "sh", "x")):
        out = last + "es"
    elif last.endswith("s"):
        out = last
    else:
        out = last + "s"
    return f"{head} {out}" if head else out


@dataclass
class ObjectAnnotations:
    """Which object categories each image holds, read from COCO instance annotations."""

    present: dict[Any, Counter]  # image id -> category name -> instance count
    files: dict[Any, str]  # image id -> file name (relative to the image folder)
    categories: list[str] = field(default_factory=list)

    def frequency(self) -> Counter:
        """Images in which each category occurs (POPE's "popular" ranking)."""
        return Counter(name for names in self.present.values() for name in names)

    def cooccurrence(self) -> dict[str, Counter]:
        """category -> images it shares with each other category (POPE's "adversarial" ranking)."""
        out: dict[str, Counter] = {c: Counter() for c in self.categories}
        for names in self.present.values():
            for a in names:
                out[a].update(b for b in names if b != a)
        return out


def read_coco_instances(path: str | Path) -> ObjectAnnotations:
    """Categories present per image from a COCO ``instances_*.json``; crowd regions count too
    (the object is in the image either way)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read COCO instance annotations ({e}); give an instances_*.json file") from e
    for key in ("images", "categories", "annotations"):
        if not isinstance(data.get(key) if isinstance(data, dict) else None, list):
            raise ValueError(f"{path}: no {key!r} list; a COCO instances file has images, categories and annotations")
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {im["id"]: im["file_name"] for im in data["images"]}
    present: dict[Any, Counter] = {i: Counter() for i in files}
    for k, ann in enumerate(data["annotations"]):
        if ann.get("image_id") not in present or ann.get("category_id") not in names:
            raise ValueError(f"{path}: annotation {k} (id {ann.get('id')}) names an unknown image or category; "
                             "check its image_id and category_id")
        present[ann["image_id"]][names[ann["category_id"]]] += 1
    return ObjectAnnotations(present, files, list(names.values()))


def read_coco_captions(path: str | Path) -> dict[Any, list[str]]:
    """image id -> reference captions from a COCO ``captions_*.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        out: dict[Any, list[str]] = {}
        for ann in data["annotations"]:
            out.setdefault(ann["image_id"], []).append(ann["caption"].strip())
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: cannot read COCO captions ({e}); give a captions_*.json file") from e
    return out


def absent_object(present: set[str], annotations: ObjectAnnotations, sampling: str, rng: random.Random) -> str:
    """One category absent from ``present``, chosen by POPE's ``sampling`` (ties broken by ``rng``)."""
    absent = [c for c in annotations.categories if c not in present]
    if not absent:
        raise ValueError("every annotated category is present in this image; there is nothing absent to inject")
    if sampling == "random":
        return rng.choice(absent)
    if sampling == "popular":
        rank = annotations.frequency()
    elif sampling == "adversarial":
        table = annotations.cooccurrence()
        rank = Counter({c: sum(table[p][c] for p in present if p in table) for c in absent})
    else:
        raise ValueError(f"unknown negative sampling {sampling!r}; use one of {NEGATIVE_SAMPLINGS}")
    return max(absent, key=lambda c: (rank[c], rng.random()))


def _forms(words: Sequence[str]) -> dict[str, bool]:
    """Each word and its plural, lower-cased, mapped to whether the form is plural (a word that is
    its own plural, "sheep", reads as singular)."""
    forms: dict[str, bool] = {}
    for word in words:
        forms.setdefault(plural(word).lower(), True)
        forms[word.lower()] = False
    return forms


def inject_object(text: str, present: set[str], absent: str, rng: random.Random,
                  synonyms: Mapping[str, Sequence[str]] | None = None) -> tuple[str, dict[str, Any]]:
    """``text`` with one mention of a present category turned into ``absent``, and what changed.

    The mention is drawn among all mentions (names, plurals, ``synonyms[name]``); a plural mention
    gets the plural of ``absent`` and an "a"/"an" before it the right article. With no mention
    the sentence "There is also a(n) <absent> in the image." is appended."""
    spans = []
    for name in sorted(present):
        forms = _forms([name, *((synonyms or {}).get(name, ()))])
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(forms, key=len, reverse=True)) + r")\b",
                             re.IGNORECASE)
        spans += [(m, name, forms[m.group(0).lower()]) for m in pattern.finditer(text)]
    if not spans:
        added = f"There is also {_article(absent)} {absent} in the image."
        return f"{text.rstrip()} {added}".strip(), {"type": "object", "object": absent, "appended": added}
    match, name, is_plural = rng.choice(sorted(spans, key=lambda s: (s[0].start(), s[1])))
    new = plural(absent) if is_plural else absent
    before, after = text[: match.start()], text[match.end():]
    article = re.search(r"\b(a|an)(\s+)$", before, re.IGNORECASE)
    if article and not is_plural:
        word = _article(new)
        word = word.capitalize() if article.group(1)[0].isupper() else word
        before = before[: article.start(1)] + word + article.group(2)
    return before + new + after, {"type": "object", "object": absent, "replaced": name, "said": match.group(0)}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def describe_objects(counts: Mapping[str, int]) -> str:
    """A ground-truth response from annotations alone: "The image shows two people and a dog."."""
    parts = [f"{_article(n)} {n}" if k == 1 else f"{_NUMBERS[k - 1] if k <= 10 else k} {plural(n)}"
             for n, k in sorted(counts.items())]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"The image shows {listed}."


def injected_pairs(annotations: ObjectAnnotations, image_root: str | Path, *, n: int | None = None,
                   captions: Mapping[Any, Sequence[str]] | None = None, sampling: str = "adversarial",
                   prompt: str = DESCRIBE_PROMPT, synonyms: Mapping[str, Sequence[str]] | None = None,
                   seed: int = 0) -> list[Preference]:
    """Pairs for up to ``n`` annotated images (seeded draw): chosen = a reference caption (or,
    without ``captions``, ``describe_objects`` of the annotations), rejected = the same text with
    an absent category injected (``sampling`` as in POPE). Images must lie under ``image_root``."""
    if sampling not in NEGATIVE_SAMPLINGS:
        raise ValueError(f"unknown negative sampling {sampling!r}; use one of {NEGATIVE_SAMPLINGS}")
    root = Path(image_root).resolve()
    rng = random.Random(seed)
    ids = [i for i in sorted(annotations.present, key=str) if annotations.present[i]]
    if captions is not None:
        ids = [i for i in ids if captions.get(i)]
    rng.shuffle(ids)
    out = []
    for image_id in ids[:n]:
        image = (root / annotations.files[image_id]).resolve()
        if not image.is_relative_to(root):
            raise ValueError(f"image {image_id}: file_name {annotations.files[image_id]!r} escapes the image folder "
                             f"{root}; keep images under it")
        counts = annotations.present[image_id]
        chosen = rng.choice(list(captions[image_id])) if captions is not None else describe_objects(counts)
        absent = absent_object(set(counts), annotations, sampling, rng)
        rejected, injected = inject_object(chosen, set(counts), absent, rng, synonyms)
        out.append(Preference(
            id=f"coco-{image_id}", messages=[user_turn(prompt)], images=[str(image)], chosen=chosen,
            rejected=rejected,
            meta={"construction": {"method": "injected", "source": "coco_instances", "sampling": sampling,
                                   "injected": [injected], "present": sorted(counts), "seed": seed}},
        ))
    return out
