"""Evaluation: tasks (samples, templates, parser, metric), pure metrics, a cached batched runner."""
from mmtune.eval.task import (
    GenerationSettings,
    Parsed,
    Prediction,
    Task,
    TaskInfo,
    get_task,
    list_tasks,
    mean_score,
    register_task,
)

__all__ = [
    "GenerationSettings",
    "Parsed",
    "Prediction",
    "Task",
    "TaskInfo",
    "get_task",
    "list_tasks",
    "mean_score",
    "register_task",
]
