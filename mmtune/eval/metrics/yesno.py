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


_WORD = re.compile(r"[a-z']+")


def parse_pope(answer: str) -> str | None:
    """POPE's rule on the first sentence: a "no"/"not" word means no; else "yes" means yes.

    The official script calls everything without "no"/"not" a yes; we report those answers as
    unparsed instead (``pope_scores(official=True)`` restores the official behaviour).
    """
    first = answer.split(".")[0].replace(",", "").lower()
    words = set(_WORD.findall(first))
    if words & {"no", "not"}:
        return "no"
    if "yes" in words:
        return "yes"
    return None


def pope_scores(answers: Sequence[str], labels: Sequence[str], official: bool = False) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive = "yes"), predicted yes-ratio (0-100) and unparsed.

    An unparsed answer is wrong either way: a missed yes (false negative) on a "yes" probe, a false
    alarm (false positive) on a "no" probe; it never counts as a predicted yes. With
    ``official=True`` unparsed answers are read as "yes", as the POPE reference does.
    """
    if len(answers) != len(labels):
        raise ValueError(f"pope_scores: {len(answers)} answers but {len(labels)} labels")
    tp = fp = tn = fn = unparsed = predicted_yes = 0
    for answer, label in zip(answers, labels):
        pred = parse_pope(answer)
        if pred is None:
            unparsed += 1
            pred = "yes" if official else None
        positive = label.strip().lower() == "yes"
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
