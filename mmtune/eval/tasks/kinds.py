"""Task kinds: the parser + per-sample score + aggregate of each benchmark family, in one place.

A benchmark reader (real files) or the world adapter only builds samples with references in
``meta`` and picks a kind here; the kinds read these meta keys:
``answers`` (vqa), ``answer`` (exact_match, counting, yesno, mme, pope; a letter for
multiple_choice), ``captions`` (caption), ``choices`` (multiple_choice), ``box`` [x1, y1, x2, y2]
in [0, 1] and optional ``image_size`` (grounding), ``category`` + ``image_id`` (mme).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmtune.data.sample import Sample
from mmtune.eval.metrics import (
    cider,
    exact_match,
    extract_choice,
    grounding_scores,
    iou,
    mme_score,
    parse_box,
    parse_pope,
    parse_yes_no_start,
    pope_scores,
    vqa_accuracy,
)
from mmtune.eval.task import DEFAULT_TEMPLATE, GenerationSettings, Parsed, Prediction, Task

# Benchmark adaptation's short-answer instruction (LLaVA-1.5), appended by readers of real sets.
SHORT_ANSWER_TEMPLATE = "{prompt}\nAnswer the question using a single word or phrase."

KindBuilder = Callable[..., Task]


def _task(name: str, samples: list[Sample], *, chance: float, seen: bool, metric: str,
          score: Callable[[Parsed, Sample], float | None], max_new_tokens: int, **kw: Any) -> Task:
    kw.setdefault("templates", (DEFAULT_TEMPLATE,))
    return Task(name=name, samples=samples, score=score, metric=metric, chance=chance, seen=seen,
                generation=GenerationSettings(max_new_tokens=max_new_tokens), **kw)


def vqa_task(name: str, samples: list[Sample], *, chance: float, seen: bool, official: bool = True, **kw: Any) -> Task:
    """VQA accuracy against ``meta["answers"]`` (10 human answers)."""
    return _task(name, samples, chance=chance, seen=seen, metric="vqa_accuracy", max_new_tokens=16,
                 score=lambda p, s: vqa_accuracy(p.answer, s.meta["answers"], official=official), **kw)


def exact_match_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Exact match against ``meta["answer"]`` (GQA, OCR-VQA, IconQA counts)."""
    return _task(name, samples, chance=chance, seen=seen, metric="exact_match", max_new_tokens=16,
                 score=lambda p, s: exact_match(p.answer, s.meta["answer"]), **kw)


def _cider_aggregate(predictions: list[Prediction]) -> dict[str, float]:
    out = cider({p.sample.id: p.parsed.answer for p in predictions},
                {p.sample.id: list(p.sample.meta["captions"]) for p in predictions})
    return {"cider": out["cider"]}


def caption_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """CIDEr-D over the set against ``meta["captions"]``; no per-sample score."""
    return _task(name, samples, chance=chance, seen=seen, metric="cider", max_new_tokens=32,
                 score=lambda p, s: None, aggregate=_cider_aggregate, **kw)


def _yes_no(raw: str, sample: Sample) -> Parsed:
    answer = parse_yes_no_start(raw)
    return Parsed(answer, "start" if answer else "unparsed")


def _yes_no_correct(parsed: Parsed, sample: Sample) -> float:
    return float(parsed.answer == sample.meta["answer"].strip().lower())


def yesno_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Accuracy of a yes/no read from the start of the answer (image-text matching, RSVQA)."""
    return _task(name, samples, chance=chance, seen=seen, metric="accuracy", max_new_tokens=4,
                 parse=_yes_no, score=_yes_no_correct, **kw)


def _mme_aggregate(predictions: list[Prediction]) -> dict[str, float]:
    scores = mme_score({"category": p.sample.meta["category"], "image_id": p.sample.meta["image_id"],
                        "answer": p.raw, "label": p.sample.meta["answer"]} for p in predictions)
    scores["accuracy"] = 100.0 * sum(p.score for p in predictions) / len(predictions) if predictions else 0.0
    return scores


def mme_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """MME: acc + acc+ per ``meta["category"]`` (pairs grouped by ``meta["image_id"]``) and the
    perception / cognition / total sums; the headline is plain accuracy so it shares the 0-100
    scale of every other task (forgetting scores average across tasks)."""
    return _task(name, samples, chance=chance, seen=seen, metric="accuracy", max_new_tokens=4,
                 parse=_yes_no, score=_yes_no_correct, aggregate=_mme_aggregate, **kw)


def _pope(raw: str, sample: Sample) -> Parsed:
    answer = parse_pope(raw)
    return Parsed(answer, "no_or_not" if answer == "no" else "yes" if answer else "unparsed")


def _pope_aggregate(predictions: list[Prediction]) -> dict[str, float]:
    return pope_scores([p.raw for p in predictions], [p.sample.meta["answer"] for p in predictions])


def pope_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """POPE: accuracy, precision, recall, F1 and the predicted yes-ratio; F1 is the headline."""
    return _task(name, samples, chance=chance, seen=seen, metric="f1", max_new_tokens=8,
                 parse=_pope, score=_yes_no_correct, aggregate=_pope_aggregate, **kw)


def _choice(raw: str, sample: Sample) -> Parsed:
    letter, rule = extract_choice(raw, sample.meta["choices"])
    return Parsed(letter, rule)


def multiple_choice_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Letter accuracy against ``meta["answer"]`` (a letter); unparsed answers are wrong."""
    return _task(name, samples, chance=chance, seen=seen, metric="accuracy", max_new_tokens=8,
                 parse=_choice, score=lambda p, s: float(p.answer == s.meta["answer"]), **kw)


def grounding_task(name: str, samples: list[Sample], *, chance: float, seen: bool, box_format: str = "norm1",
                   **kw: Any) -> Task:
    """acc@0.5 and mean IoU of the box a model writes, read in its family's ``box_format``."""

    def parse(raw: str, sample: Sample) -> Parsed:
        box = parse_box(raw, box_format, sample.meta.get("image_size"))
        return Parsed(box, box_format if box else "unparsed")

    def score(parsed: Parsed, sample: Sample) -> float:
        return float(parsed.answer is not None and iou(parsed.answer, sample.meta["box"]) >= 0.5)

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        return grounding_scores([p.parsed.answer for p in predictions], [p.sample.meta["box"] for p in predictions])

    return _task(name, samples, chance=chance, seen=seen, metric="acc@0.5", max_new_tokens=32,
                 parse=parse, score=score, aggregate=aggregate, **kw)


KINDS: dict[str, KindBuilder] = {
    "vqa": vqa_task,
    "exact_match": exact_match_task,
    "counting": exact_match_task,
    "caption": caption_task,
    "yesno": yesno_task,
    "mme": mme_task,
    "pope": pope_task,
    "multiple_choice": multiple_choice_task,
    "grounding": grounding_task,
}

KIND_METRICS = {"vqa": "vqa_accuracy", "exact_match": "exact_match", "counting": "exact_match",
                "caption": "cider", "yesno": "accuracy", "mme": "accuracy", "pope": "f1",
                "multiple_choice": "accuracy", "grounding": "acc@0.5"}
