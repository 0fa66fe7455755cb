"""TRL's DPO and KTO trainers with mmtune's training machinery: their losses, our data and checkpoints.

Each trainer class puts ``mmtune.recipes.trainer.SFTTrainer`` (per-group learning rates, atomic
checkpoints that resume, exact per-step losses, the divergence check's gradient norm) in front of
TRL's trainer, whose ``compute_loss`` (the loss types, the reference forward, the reward metrics)
runs unchanged. What TRL would do with the data -- tokenise a ``prompt``/``chosen``/``rejected``
dataset -- is replaced by mmtune's collators (``collate.py``).

The reference: with a strategy that is PEFT alone (LoRA, DoRA, IA3, prompt tuning ...) it is the
same model with its adapters disabled, no second copy; otherwise a frozen copy of the model taken
before the strategy is applied.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from torch import nn
from trl import DPOTrainer, KTOTrainer

from mmtune.recipes.trainer import SFTTrainer, StepLossLog
from mmtune.strategies.registry import ResolvedStrategy

# TRL's per-batch metrics written to the step log (losses.jsonl), mean over a step's micro-batches
STEP_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl",
                "rewards/corrupted", "mdpo/conditional", "mdpo/anchor")


def adapters_are_the_reference(strategy: ResolvedStrategy) -> bool:
    """Whether the strategy trains PEFT weights only, so disabling the adapters gives back the base."""
    return all(entry.uses_peft for _, entry, _ in strategy.parts)


def frozen_reference(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (before the strategy changes it), in eval mode."""
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


class _PreferenceSteps:
    """What every preference trainer adds to TRL's: mmtune's collators in place of TRL's tokenisation,
    the base (adapters off) as the PEFT reference, and TRL's reward metrics kept per optimizer step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Given a PeftModel and no ref_model, TRL copies the adapter into a "ref" adapter, so its reference
        # is base + the adapter's initial weights: the base only for zero-initialised adapters (not for
        # prompt tuning, DoRA's magnitudes ...). The reference here is the base, so that copy goes.
        peft_config = getattr(self.model, "peft_config", None)
        if self.ref_model is None and peft_config is not None and "ref" in peft_config:
            self.model.delete_adapter("ref")
        self._step_metrics: dict[str, list[float]] = defaultdict(list)

    def _send_telemetry(self) -> None:
        """mmtune runs offline by design: a training run never reports itself to the Hub."""

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No TRL model card: it names a Hub base and a text pipeline; ``final/mmtune.json`` records the run."""

    def _prepare_dataset(self, dataset, *args: Any, **kwargs: Any):
        return dataset  # rows are indices; the collator renders and tokenises each batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logged = self._metrics["train"]
        before = {key: len(logged.get(key, ())) for key in STEP_METRICS}
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if self.model.training:  # as TRL tells train from eval
            for key in STEP_METRICS:  # only what this batch logged (KTO skips margins without both labels)
                self._step_metrics[key].extend(logged.get(key, [])[before[key]:])
        return out

    def pop_step_metrics(self) -> dict[str, float]:
        """Mean of each reward metric over the micro-batches since the last call (one optimizer step)."""
        out = {key: sum(v) / len(v) for key, v in self._step_metrics.items() if v}
        self._step_metrics.clear()
        return out


class DPOAlignTrainer(_PreferenceSteps, SFTTrainer, DPOTrainer):
    """DPO and its loss types (TRL's ``loss_type``: sigmoid, ipo, hinge, robust, ...)."""


class KTOAlignTrainer(_PreferenceSteps, SFTTrainer, KTOTrainer):
    """KTO on unpaired records (TRL's ``loss_type``: kto, apo_zero_unpaired)."""


class PreferenceStepLog(StepLossLog):
    """``losses.jsonl`` with each step's rewards/chosen, rewards/rejected, margins and accuracies beside its loss."""

    def step_metrics(self) -> dict[str, float]:
        return self.trainer.pop_step_metrics()
