"""Task kinds: the parser + per-sample score + aggregate of each benchmark family, in one place.

A benchmark reader (real files) or the world adapter only builds samples with references in
``meta`` and picks a kind here; the kinds read these meta keys:
``answers`` (vqa), ``answer`` (exact_match, counting, yesno, mme, pope; a letter for
multiple_choice), ``captions`` (caption), ``choices`` (multiple_choice), ``box`` [x1, y1, x2, y2]
in [0, 1] and optional ``image_size`` (grounding), ``category`` + ``image_id`` (mme), ``objects``
(canonical names of the objects in the image) and optional ``captions`` (describe).
Each kind names in ``Task.reference`` whose scoring rules it follows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmtune.data.sample import Sample
from mmtune.eval.metrics import (
    cider,
    exact_match,
    extract_choice,
    grounding_scores,
    iou,
    mme_score,
    parse_yes_no_start,
    pope_scores,
    vqa_accuracy,
)
from mmtune.eval.metrics.grounding import read_box
from mmtune.eval.metrics.hallucination import VOCABULARIES, ObjectVocabulary, chair, extract_objects
from mmtune.eval.metrics.vqa import DEFAULT_VQA_RULES, vqa_rules
from mmtune.eval.metrics.yesno import POPE_REFERENCE, parse_pope, parse_pope_official
from mmtune.eval.task import DEFAULT_TEMPLATE, GenerationSettings, Parsed, Prediction, Task
from mmtune.registry import Registry

# Benchmark adaptation's short-answer instruction (LLaVA-1.5), appended by readers of real sets.
SHORT_ANSWER_TEMPLATE = "{prompt}\nAnswer the question using a single word or phrase."

KindBuilder = Callable[..., Task]


MME_REFERENCE = "MME eval_tool/calculation.py (parse_pred_ans: yes/no within the first 4 characters)"


def _task(name: str, samples: list[Sample], *, chance: float, seen: bool, metric: str, reference: str,
          score: Callable[[Parsed, Sample], float | None], max_new_tokens: int, **kw: Any) -> Task:
    kw.setdefault("templates", (DEFAULT_TEMPLATE,))
    return Task(name=name, samples=samples, score=score, metric=metric, chance=chance, seen=seen,
                reference=reference, generation=GenerationSettings(max_new_tokens=max_new_tokens), **kw)


def vqa_task(name: str, samples: list[Sample], *, chance: float, seen: bool, rules: str = DEFAULT_VQA_RULES,
             **kw: Any) -> Task:
    """VQA accuracy against ``meta["answers"]`` (10 human answers) under ``rules``, a
    ``VQA_RULES`` key naming the reference evaluator whose answer normalization is used."""
    reference = vqa_rules(rules).source
    return _task(name, samples, chance=chance, seen=seen, metric="vqa_accuracy", max_new_tokens=16,
                 reference=reference, score=lambda p, s: vqa_accuracy(p.answer, s.meta["answers"], rules=rules),
                 **kw)


def exact_match_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Exact match against ``meta["answer"]`` (GQA, OCR-VQA, IconQA counts)."""
    return _task(name, samples, chance=chance, seen=seen, metric="exact_match", max_new_tokens=16,
                 reference="exact match after lower-casing, stripping, one trailing period (metrics/vqa.py)",
                 score=lambda p, s: exact_match(p.answer, s.meta["answer"]), **kw)


def _cider_aggregate(predictions: list[Prediction]) -> dict[str, float]:
    out = cider({p.sample.id: p.parsed.answer for p in predictions},
                {p.sample.id: list(p.sample.meta["captions"]) for p in predictions})
    return {"cider": out["cider"]}


def caption_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """CIDEr-D over the set against ``meta["captions"]``; no per-sample score."""
    return _task(name, samples, chance=chance, seen=seen, metric="cider", max_new_tokens=32,
                 reference="pycocoevalcap cider/cider.py (CIDEr-D); captions tokenized by metrics/caption.py, which follows "
                           "pycocoevalcap's PTBTokenizer (CoreNLP 3.4.1) without Java",
                 score=lambda p, s: None, aggregate=_cider_aggregate, **kw)


def _yes_no(raw: str, sample: Sample) -> Parsed:
    answer = parse_yes_no_start(raw)
    return Parsed(answer, "start" if answer else "unparsed")


def _yes_no_correct(parsed: Parsed, sample: Sample) -> float:
    return float(parsed.answer == sample.meta["answer"].strip().lower())


def yesno_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Accuracy of a yes/no read from the start of the answer (image-text matching, RSVQA)."""
    return _task(name, samples, chance=chance, seen=seen, metric="accuracy", max_new_tokens=4,
                 reference=MME_REFERENCE, parse=_yes_no, score=_yes_no_correct, **kw)


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
                 reference=MME_REFERENCE, parse=_yes_no, score=_yes_no_correct, aggregate=_mme_aggregate, **kw)


def _pope(raw: str, sample: Sample) -> Parsed:
    return Parsed(*parse_pope(raw))


def _pope_official(raw: str, sample: Sample) -> Parsed:
    return Parsed(parse_pope_official(raw), "official")


def pope_task(name: str, samples: list[Sample], *, chance: float, seen: bool, official: bool = False,
              **kw: Any) -> Task:
    """POPE: accuracy, precision, recall, F1, the predicted yes-ratio and the unparsed count; F1 is
    the headline. By default an answer ``parse_pope`` cannot read is unparsed and counts as wrong
    (a miss on a "yes" probe, a false alarm on a "no" probe); ``official=True`` reads every answer
    as POPE's ``evaluate.py`` does (no "No"/"no"/"not" word: yes)."""

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        return pope_scores([p.raw for p in predictions], [p.sample.meta["answer"] for p in predictions],
                           official=official)

    if official:
        reference = f"{POPE_REFERENCE}, exactly: an answer without a 'No'/'no'/'not' word is a yes"
    else:
        reference = (f"{POPE_REFERENCE}'s no-words, read by metrics/yesno.py parse_pope; an unparsed answer "
                     "counts as wrong (a miss on a yes probe, a false alarm on a no probe)")
    return _task(name, samples, chance=chance, seen=seen, metric="f1", max_new_tokens=8, reference=reference,
                 parse=_pope_official if official else _pope, score=_yes_no_correct, aggregate=aggregate, **kw)


def _choice(raw: str, sample: Sample) -> Parsed:
    letter, rule = extract_choice(raw, sample.meta["choices"])
    return Parsed(letter, rule)


def multiple_choice_task(name: str, samples: list[Sample], *, chance: float, seen: bool, **kw: Any) -> Task:
    """Letter accuracy against ``meta["answer"]`` (a letter); unparsed answers are wrong."""
    return _task(name, samples, chance=chance, seen=seen, metric="accuracy", max_new_tokens=8,
                 reference="letter extraction by metrics/choice.py extract_choice; unparsed answers are wrong",
                 parse=_choice, score=lambda p, s: float(p.answer == s.meta["answer"]), **kw)


def grounding_task(name: str, samples: list[Sample], *, chance: float, seen: bool, box_format: str = "norm1",
                   **kw: Any) -> Task:
    """acc@0.5 and mean IoU of the box a model writes, read in its family's ``box_format``."""

    def parse(raw: str, sample: Sample) -> Parsed:
        # Pixel formats need the original size: the reader's meta, else the in-memory image's own.
        size = sample.meta.get("image_size") or next((im.size for im in sample.images if hasattr(im, "size")), None)
        return Parsed(*read_box(raw, box_format, size))

    def score(parsed: Parsed, sample: Sample) -> float:
        return float(parsed.answer is not None and iou(parsed.answer, sample.meta["box"]) >= 0.5)

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        return grounding_scores([p.parsed.answer for p in predictions], [p.sample.meta["box"] for p in predictions])

    return _task(name, samples, chance=chance, seen=seen, metric="acc@0.5", max_new_tokens=32,
                 reference=f"IoU >= 0.5 with the box read as {box_format} (metrics/grounding.py)",
                 parse=parse, score=score, aggregate=aggregate, **kw)


def describe_task(name: str, samples: list[Sample], *, chance: float, seen: bool,
                  vocabulary: str | ObjectVocabulary = "coco", truth_from_captions: bool = True,
                  max_new_tokens: int = 128, **kw: Any) -> Task:
    """Object hallucination in free descriptions: CHAIR_s, CHAIR_i (the headline, lower is better),
    hallucinated objects per response and recall. Mentions are read with ``vocabulary`` (a
    ``VOCABULARIES`` name or an ``ObjectVocabulary``); an image's objects are ``meta["objects"]``
    plus, with ``truth_from_captions`` (as the reference CHAIR does on COCO), those its reference
    ``meta["captions"]`` mention. The parsed answer is the list of objects mentioned."""
    vocab = VOCABULARIES[vocabulary] if isinstance(vocabulary, str) else vocabulary

    def objects(sample: Sample) -> set[str]:
        found = set()
        for obj in sample.meta["objects"]:
            if (canonical := vocab.object_of(obj)) is None:
                raise ValueError(f"task {name!r}: sample {sample.id!r} lists object {obj!r}, which object vocabulary "
                                 f"{vocab.name!r} does not name; use its names ({', '.join(sorted(vocab.synonyms))}) "
                                 "or build the task with the vocabulary the samples use")
            found.add(canonical)
        if truth_from_captions:
            found.update(o for c in sample.meta.get("captions", ()) for o in extract_objects(c, vocab))
        return found

    def aggregate(predictions: list[Prediction]) -> dict[str, float]:
        return chair([p.parsed.answer for p in predictions], [objects(p.sample) for p in predictions])

    return _task(name, samples, chance=chance, seen=seen, metric="chair_i", max_new_tokens=max_new_tokens,
                 reference="CHAIR, LisaAnne/Hallucination utils/chair.py (6e4d33c) with its COCO synonyms; words "
                           f"and plurals read by metrics/hallucination.py; vocabulary {vocab.name!r}",
                 parse=lambda raw, s: Parsed(extract_objects(raw, vocab), "objects"), score=lambda p, s: None,
                 aggregate=aggregate, **kw)


@dataclass(frozen=True)
class TaskKind:
    """A benchmark family's task builder and the headline metric it reports, declared together,
    with the metric's direction (CHAIR counts errors: lower is better)."""

    build: KindBuilder
    metric: str
    higher_is_better: bool = True


# A new kind (and with it a new metric) is one line here; world tasks and benchmark readers name
# their kind and the registry checks it.
TASK_KINDS: Registry[TaskKind] = Registry("task kind")
for _name, _build, _metric in (
    ("vqa", vqa_task, "vqa_accuracy"),
    ("exact_match", exact_match_task, "exact_match"),
    ("counting", exact_match_task, "exact_match"),
    ("caption", caption_task, "cider"),
    ("yesno", yesno_task, "accuracy"),
    ("mme", mme_task, "accuracy"),
    ("pope", pope_task, "f1"),
    ("multiple_choice", multiple_choice_task, "accuracy"),
    ("grounding", grounding_task, "acc@0.5"),
):
    TASK_KINDS.register(_name, TaskKind(_build, _metric))
TASK_KINDS.register("describe", TaskKind(describe_task, "chair_i", higher_is_better=False))
