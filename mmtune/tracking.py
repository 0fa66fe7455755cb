"""Experiment trackers (TensorBoard, Weights & Biases, MLflow, trackio) for training losses and eval scores.

Training logs through the transformers Trainer's own integrations (``TrainingArguments.report_to``);
scores measured after training (a bench run's E, F, O, ``mmtune eval``'s tasks) go through the same
integration callbacks, so every tracker receives them under the run's name without code per tracker.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# tracker name (as ``report_to`` takes it) -> the pip package that provides it
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}
NONE = "none"


def _installed(name: str) -> bool:
    from transformers.integrations import integration_utils

    return getattr(integration_utils, f"is_{name}_available")()


def default_report_to() -> list[str]:
    """TensorBoard when it is installed (local event files, nothing leaves the machine), else no tracker."""
    return ["tensorboard"] if _installed("tensorboard") else []


def check_report_to(report_to: str | Sequence[str], option: str = "training.report_to") -> list[str]:
    """The trackers ``report_to`` names, as a list ([] for "none"); an unknown or uninstalled one is an
    error naming ``option`` and the pip package, raised before any training starts."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if NONE in names:
        if len(names) > 1:
            raise ValueError(f"{option}: 'none' turns every tracker off and cannot be listed with others ({names})")
        return []
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"{option}: unknown tracker {', '.join(map(repr, unknown))}; use any of "
                         f"{', '.join(TRACKERS)}, or none")
    missing = [n for n in names if not _installed(n)]
    if missing:
        packages = " ".join(TRACKERS[n] for n in missing)
        raise ValueError(f"{option}: {', '.join(missing)} is asked for but not installed; run `pip install {packages}` "
                         f"or drop it from {option}")
    return list(dict.fromkeys(names))


def route_logs(callbacks: Sequence[Any], logging_dir: str | Path) -> None:
    """Point the TensorBoard callback among ``callbacks`` at ``logging_dir`` (transformers 5 writes to
    ``output_dir/runs/<date>_<host>`` otherwise); a ``TENSORBOARD_LOGGING_DIR`` set by the user wins."""
    from transformers.integrations import TensorBoardCallback

    for callback in callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(logging_dir)


def log_scores(report_to: Sequence[str], scores: Mapping[str, float], *, logging_dir: str | Path,
               run_name: str, step: int = 0) -> None:
    """Log ``scores`` (name -> value) as ``eval/<name>`` at ``step`` to each tracker, under ``run_name``
    (TensorBoard: the event files in ``logging_dir``, beside the run's training curves)."""
    names = check_report_to(report_to)
    if not names or not scores:
        return
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import get_reporting_integration_callbacks

    callbacks = [cls() for cls in get_reporting_integration_callbacks(names)]
    route_logs(callbacks, logging_dir)
    args = TrainingArguments(output_dir=str(logging_dir), report_to=names, run_name=run_name, use_cpu=True)
    state, control = TrainerState(global_step=step), TrainerControl()
    logs = {f"eval_{name}": float(value) for name, value in scores.items()}
    for callback in callbacks:
        callback.on_log(args, state, control, logs=logs)
        callback.on_train_end(args, state, control)
