"""Verifiable rewards for GRPO: each scores one completion against the references its sample carries.

A reward is the eval harness's own judgement, so training optimises exactly what ``mmtune eval``
scores. The judge of a sample is the eval task it comes from: the world task named by
``meta["task"]`` (built as ``world_<task>`` is, e.g. descriptions read with the world's object
vocabulary), else the task kind ``meta["kind"]`` (``mmtune.eval.tasks.kinds.TASK_KINDS``) with its
defaults. Its parser and per-sample metric give the answer reward (VQA accuracy, exact match, the
option letter, yes/no); grounding boxes are compared with ``mmtune.eval.metrics.grounding.iou`` and
descriptions with CHAIR's object counts. References live in ``meta`` as in eval samples.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from mmtune.data.sample import Sample
from mmtune.eval.metrics.grounding import iou
from mmtune.eval.task import Task, get_task
from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.tasks import WORLD_TASKS

# A reward: (completion text, sample with its references, box format) -> a score in [0, 1].
Reward = Callable[[str, Sample, str], float]


def task_kind(sample: Sample) -> str:
    """The eval task kind whose parser and metric judge ``sample``'s answers."""
    kind = sample.meta.get("kind")
    if kind is None and sample.meta.get("task") in WORLD_TASKS:
        kind = WORLD_TASKS[sample.meta["task"]].kind
    if kind is None:
        raise ValueError(f"sample {sample.id!r}: no verifiable reward without a task kind; give it meta['kind'] "
                         f"(one of {', '.join(sorted(TASK_KINDS))}) or meta['task'] naming a world task")
    if kind not in TASK_KINDS:
        raise ValueError(f"sample {sample.id!r}: meta kind {kind!r} is not a task kind; use one of "
                         f"{', '.join(sorted(TASK_KINDS))}")
    return kind


def judge(sample: Sample, box_format: str = "norm1") -> Task:
    """The eval task (without samples) whose parser and scores judge ``sample``."""
    kind = task_kind(sample)
    world = sample.meta.get("task") if sample.meta.get("kind") is None else None
    return _world_judge(world, box_format) if world else _kind_judge(kind, box_format)


@lru_cache(maxsize=None)
def _world_judge(task: str, box_format: str) -> Task:
    return get_task(f"world_{task}", n=0, box_format=box_format)


@lru_cache(maxsize=None)
def _kind_judge(kind: str, box_format: str) -> Task:
    options = {"box_format": box_format} if kind == "grounding" else {}
    return TASK_KINDS[kind].build(f"reward_{kind}", [], chance=0.0, seen=False, **options)


def iou_reward(completion: str, sample: Sample, box_format: str = "norm1") -> float:
    """IoU of the box read from ``completion`` (in the family's ``box_format``) with ``meta["box"]``; 0 unparsed."""
    reference = sample.meta["box"]
    box = judge(sample, box_format).parse(completion, sample).answer
    return 0.0 if box is None else iou(box, reference)


def description_reward(completion: str, sample: Sample, box_format: str = "norm1") -> float:
    """F1 of the objects a description names against those in the image, from CHAIR's counts for this
    one response: precision = 1 - CHAIR_i (its mentions of present objects), recall = present objects
    it names. Precision alone would reward naming one safe object; recall alone, naming everything."""
    task = judge(sample, box_format)
    counts = task.aggregate([task.judge(sample, completion)])
    precision = 1.0 - counts["chair_i"] / 100.0 if counts["n_mentions"] else 0.0
    recall = counts["recall"] / 100.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# Kinds whose eval score is over a whole set, with the per-response reward that stands for it.
PER_RESPONSE: dict[str, Reward] = {"grounding": iou_reward, "describe": description_reward}


def answer_reward(completion: str, sample: Sample, box_format: str = "norm1") -> float:
    """How right the answer is, in [0, 1]: the eval task's per-sample score (exact match, VQA accuracy,
    option letter, yes/no, as ``mmtune eval`` normalises them); for grounding the IoU, so a closer box
    earns more than a miss even below the 0.5 the eval counts as correct; for descriptions
    ``description_reward``."""
    kind = task_kind(sample)
    if kind in PER_RESPONSE:
        return PER_RESPONSE[kind](completion, sample, box_format)
    score = judge(sample, box_format).judge(sample, completion).score
    if score is None:
        raise ValueError(f"sample {sample.id!r}: task kind {kind!r} is scored over a whole set (e.g. CIDEr), not "
                         "per answer, so it gives GRPO no reward; use samples of a per-answer kind")
    return float(score)


def format_reward(completion: str, sample: Sample, box_format: str = "norm1") -> float:
    """1 when the eval task's parser reads an answer from ``completion`` (a letter, a yes/no, a box, an
    object named, a non-empty short answer), else 0: the answer is at least in a form the task scores."""
    answer = judge(sample, box_format).parse(completion, sample).answer
    return float(answer is not None and len(answer) > 0)


# Names as TRL logs them (rewards/<name>/mean); a new verifiable reward is one row.
REWARDS: dict[str, Reward] = {"answer": answer_reward, "format": format_reward}


def check_rewardable(samples: Sequence[Sample], box_format: str = "norm1") -> None:
    """Fail before step 0, naming the samples, when a reward cannot be computed for them (no kind,
    a reference missing from ``meta``, a kind scored only over a whole set)."""
    problems = []
    for sample in samples:
        try:
            for reward in REWARDS.values():
                reward("", sample, box_format)
        except KeyError as e:
            problems.append(f"sample {sample.id!r}: meta has no {e.args[0]!r}, the reference its "
                            f"{sample.meta.get('kind') or sample.meta.get('task')} reward reads")
        except ValueError as e:
            problems.append(str(e))
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ValueError(f"GRPO needs verifiable rewards, but {len(problems)} samples cannot be scored:\n  {shown}")
