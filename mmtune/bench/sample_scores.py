"""Per-sample scores of an evaluated test set, in a form the bootstrap can resample.

Each form reproduces the task's headline score exactly before it is kept: accuracy-like metrics are
the mean of per-sample scores; POPE's F1 is rebuilt from per-sample [tp, fp, fn]; CHAIR_i from
per-sample [hallucinated mentions, mentions] (the task's own CHAIR of each answer); CIDEr-D is the
mean of its per-image scores (pycocoevalcap averages them), whose IDF stays that of the whole test
set in every resample. A score no form reproduces (e.g. a per-question-type accuracy) gets none,
and the report shows its intervals as n/a.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.bench.uncertainty import SampleScores
from mmtune.eval.task import Prediction, Task


def read_predictions(task: Task, samples_file: Path, n: int) -> list[Prediction] | None:
    """The eval runner's answers for ``task``'s first ``n`` samples, judged again in sample order."""
    if not samples_file.exists():
        return None
    raws: dict[str, str] = {}
    for line in samples_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            raws[str(record["id"])] = record["raw"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a cut or foreign line: its sample, if needed, counts as missing below
    samples = task.samples[:n]
    if any(str(s.id) not in raws for s in samples):
        return None
    return [task.judge(s, raws[str(s.id)]) for s in samples]


def _candidate(task: Task, metric: str, predictions: list[Prediction]) -> SampleScores | None:
    if metric == "cider":
        from mmtune.eval.metrics import cider

        per_id = cider({p.sample.id: p.parsed.answer for p in predictions},
                       {p.sample.id: list(p.sample.meta["captions"]) for p in predictions})["per_id"]
        return SampleScores("mean", np.array([per_id[p.sample.id] for p in predictions], dtype=float))
    if metric == "chair_i":
        counts = [task.aggregate([p]) for p in predictions]
        return SampleScores("ratio", np.array([[c["n_hallucinated"], c["n_mentions"]] for c in counts], dtype=float))
    if any(p.score is None for p in predictions):
        return None
    if metric == "f1":
        positive = np.array([str(p.sample.meta.get("answer", "")).strip().lower() == "yes" for p in predictions])
        right = np.array([p.score for p in predictions], dtype=float)
        return SampleScores("f1", np.stack([positive * right, ~positive * (1 - right), positive * (1 - right)], 1))
    if metric != task.metric:  # e.g. a per-question-type accuracy or MME's acc + acc+ sums
        return None
    return SampleScores("mean", 100.0 * np.array([p.score for p in predictions], dtype=float))


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def sample_scores(task: Task, predictions: list[Prediction], metric: str, headline: float) -> SampleScores | None:
    """Per-sample scores whose statistic gives ``headline`` (the task's ``metric``), else None. The mean
    form must also give the task's own score of every other sample, so a coincidence cannot pass."""
    if not predictions:
        return None
    try:
        found = _candidate(task, metric, predictions)
    except (KeyError, ValueError):  # a task without the references a form needs
        return None
    if found is None or not _same(float(found.score()), headline):
        return None
    if metric != "cider" and len(predictions) > 1:  # CIDEr's IDF is the whole set's: no subset check
        half = np.arange(0, len(predictions), 2)
        if not _same(float(found.score(half)), float(task.aggregate([predictions[i] for i in half])[metric])):
            return None
    return found


def evaluated_sample_scores(task: Task, eval_dir: Path, n: int, result: dict[str, Any],
                            metric: str) -> SampleScores | None:
    """Per-sample scores of one task the eval runner wrote into ``eval_dir``, or None."""
    predictions = read_predictions(task, eval_dir / f"{task.name}.samples.jsonl", n)
    if predictions is None or result["scores"].get(metric) is None:
        return None
    return sample_scores(task, predictions, metric, float(result["scores"][metric]))
