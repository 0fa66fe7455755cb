"""Stop a run whose loss or gradients blew up, before it checkpoints or saves a broken model.

Checked after every optimizer step, before the Trainer may checkpoint it: a non-finite loss or
gradient norm, or a task loss (the objective without the anti-forgetting methods' penalty terms,
which start at 0 and may grow by design) above ``factor`` times the reference: the first step's
loss, at least 1.0 so a base that already fits the data is not stopped by ordinary noise.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from mmtune.recipes.checkpoints import last_complete_checkpoint

if TYPE_CHECKING:
    from mmtune.recipes.trainer import SFTTrainer, StepLossLog

REFERENCE_FLOOR = 1.0


class TrainingDiverged(RuntimeError):
    """A run stopped because its loss or gradient norm diverged; nothing was saved as final."""


def divergence_reason(loss: float, grad_norm: float | None, first_loss: float | None, factor: float,
                      penalty: float = 0.0) -> str | None:
    """Why this step counts as diverged, or ``None``; ``factor`` 0 turns the loss-growth rule off.

    ``loss`` is the step's objective, ``penalty`` the methods' terms in it, left out of the growth rule.
    """
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    task_loss = loss - penalty
    if factor and first_loss is not None and math.isfinite(first_loss):
        limit = factor * max(first_loss, REFERENCE_FLOOR)
        if task_loss > limit:
            return (f"the loss {task_loss:.4g}{' (penalty terms left out)' if penalty else ''} exceeds "
                    f"training.divergence_factor={factor:g} x the first step's loss {first_loss:.4g} "
                    f"(taken as at least {REFERENCE_FLOOR:g})")
    return None


class DivergenceGuard(TrainerCallback):
    """Raises ``TrainingDiverged`` at the first diverged step, naming it and the last complete checkpoint.

    Reads the step's loss from ``losses`` (which must run first) and its pre-clipping gradient
    norm from ``trainer``.
    """

    def __init__(self, output_dir: Path, factor: float, losses: StepLossLog, trainer: SFTTrainer) -> None:
        self.output_dir, self.factor, self.losses, self.trainer = Path(output_dir), factor, losses, trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        reason = divergence_reason(self.losses.last_loss, self.trainer.last_grad_norm, self.losses.first_loss,
                                   self.factor, self.trainer.last_penalty)
        if reason is None:
            return
        checkpoint, _ = last_complete_checkpoint(self.output_dir)
        where = (f"the last checkpoint before it is {checkpoint}" if checkpoint
                 else "no checkpoint was saved before it")
        raise TrainingDiverged(
            f"training diverged at step {state.global_step}: {reason}; {where}; no final model was saved. "
            "Lower training.lr (or find the non-finite value in the data or base weights) and rerun"
        )
