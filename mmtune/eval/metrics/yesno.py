"""Yes/no benchmarks: MME (acc + acc+ per category) and POPE (hallucination probes)."""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

# MME's two category sets (its official ``calculation.py``); perception and cognition are sums.
MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
                  "landmark", "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def parse_yes_no_start(answer: str) -> str | None:
    """MME's rule: "yes"/"no" when the answer is exactly that or its first 4 characters contain it.

    As in the official ``parse_pred_ans``, "yes" is looked for before "no" and the answer is
    lower-cased first; we also strip surrounding whitespace, which generation often leaves.
    """
    text = answer.strip().lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return None


def mme_score(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """MME scores from records ``{category, image_id, answer, label}`` (label "yes"/"no").

    Per category: acc = share of correct questions x 100, acc+ = share of images whose questions
    are all correct x 100, score = acc + acc+ (max 200). ``perception`` and ``cognition`` sum the
    scores of the categories present; ``total`` sums both. Unparsed answers are wrong.
    """
    by_cat: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        right = parse_yes_no_start(r["answer"]) == r["label"].strip().lower()
        by_cat[r["category"]][str(r["image_id"])].append(right)
    out: dict[str, float] = {}
    for cat, images in sorted(by_cat.items()):
        answers = [ok for oks in images.values() for ok in oks]
        acc = 100.0 * sum(answers) / len(answers)
        acc_plus = 100.0 * sum(all(oks) for oks in images.values()) / len(images)
        out[f"{cat}/acc"], out[f"{cat}/acc+"], out[cat] = acc, acc_plus, acc + acc_plus
    # Category names are matched case-insensitively ("OCR" in the release, "ocr" elsewhere).
    out["perception"] = sum(out[c] for c in by_cat if c.lower() in {k.lower() for k in MME_PERCEPTION})
    out["cognition"] = sum(out[c] for c in by_cat if c.lower() in {k.lower() for k in MME_COGNITION})
    out["total"] = out["perception"] + out["cognition"]
    return out


POPE_REFERENCE = "RUCAIBox/POPE evaluate.py @3df3ba1"
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?\n]")
_NEGATIONS = {"no", "not", "none", "nothing", "nope", "cannot"}


def parse_pope(answer: str) -> tuple[str | None, str]:
    """A POPE answer read as "yes" / "no", and the rule that fired; ``(None, "unparsed")`` if none.

    Rules, first match wins, on the lower-cased answer: ``leading`` (it opens with yes/yeah/yep or
    no/nope: "No, there is not." and "Yes, not a cat but a dog." alike), ``negation`` (the first
    sentence has no / not / none / nothing / cannot or an "n't" word), ``yes`` (a "yes" in the first
    sentence). The reference reads anything without a case-sensitive "No" / "no" / "not" word as
    yes ("NO", "isn't", "No!", "I see a bird"); here an answer no rule reads stays unparsed and is
    reported, because without the question a statement like "There is a bird." is no answer.
    """
    text = answer.strip().lower().replace("\u2019", "'")
    words = _WORD.findall(text)
    if words and words[0] in ("yes", "yeah", "yep"):
        return "yes", "leading"
    if words and words[0] in ("no", "nope"):
        return "no", "leading"
    first = _WORD.findall(_SENTENCE_END.split(text, maxsplit=1)[0])
    if any(w in _NEGATIONS or w.endswith("n't") for w in first):
        return "no", "negation"
    if "yes" in first:
        return "yes", "yes"
    return None, "unparsed"


def parse_pope_official(answer: str) -> str:
    """POPE's ``evaluate.py`` exactly: keep the text before the first ".", drop commas, split on
    single spaces; a word equal to "No", "no" or "not" (case-sensitive) means no, anything else yes
    ("No," -> no, "No!" -> yes, "NO" -> yes, "no\nthere" -> yes, "" -> yes)."""
    words = answer.split(".")[0].replace(",", "").split(" ")
    return "no" if {"No", "no", "not"} & set(words) else "yes"


def _is_yes_label(label: str, index: int) -> bool:
    value = label.strip().lower()
    if value not in ("yes", "no"):
        raise ValueError(f"POPE probe {index}: label {label!r} is neither 'yes' nor 'no'; fix the label file")
    return value == "yes"


def pope_scores(answers: Sequence[str], labels: Sequence[str], official: bool = False) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive = "yes"), predicted yes-ratio (all 0-100) and the
    number of unparsed answers.

    Default (``parse_pope``): an unparsed answer is wrong either way, a missed yes (false negative)
    on a "yes" probe and a false alarm (false positive) on a "no" probe; it is never a predicted
    yes. ``official=True`` reads every answer with ``parse_pope_official`` (nothing is unparsed),
    reproducing the reference's figures; where it would divide by zero (no predicted yes) precision
    is reported as 0.
    """
    if len(answers) != len(labels):
        raise ValueError(f"pope_scores: {len(answers)} answers but {len(labels)} labels")
    tp = fp = tn = fn = unparsed = predicted_yes = 0
    for i, (answer, label) in enumerate(zip(answers, labels)):
        pred = parse_pope_official(answer) if official else parse_pope(answer)[0]
        positive = _is_yes_label(label, i)
        unparsed += pred is None
        predicted_yes += pred == "yes"
        if pred == "yes":
            tp += positive
            fp += not positive
        elif pred == "no":
            tn += not positive
            fn += positive
        else:
            fn += positive
            fp += not positive
    n = len(answers)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": 100.0 * (tp + tn) / n if n else 0.0,
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * predicted_yes / n if n else 0.0,
        "unparsed": float(unparsed),
    }
