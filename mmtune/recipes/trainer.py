"""The transformers Trainer, extended with what SFT of multimodal models needs and it lacks.

Per-group learning rates, the L2-SP penalty (anti-forgetting), an exact per-step loss log that
survives resume, length grouping from precomputed lengths, and checkpoints that resume
correctly for families transformers saves under legacy key names.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from mmtune.data.sample import Sample
from mmtune.files import append_jsonl, atomic_write_text, read_jsonl


class SampleDataset(torch.utils.data.Dataset):
    """Samples as a map-style dataset; the collator does all processing, per batch."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


class StepLossLog(TrainerCallback):
    """Appends each optimizer step's loss (mean over processes) to ``losses.jsonl``, exactly.

    The Trainer's own log averages over ``logging_steps``; the resume test and the benchmark
    need every step. The file survives a crash, so a resumed run reports the whole curve.
    """

    def __init__(self, trainer: SFTTrainer, path: Path) -> None:
        self.trainer, self.path = trainer, path

    def on_train_begin(self, args, state, control, **kwargs):
        # Keep the losses up to the step resumed from (0 for a fresh run); later steps are rerun.
        if state.is_world_process_zero:
            kept = [r for r in read_jsonl(self.path) if r["step"] <= state.global_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def on_step_end(self, args, state, control, **kwargs):
        loss = self.trainer.pop_step_loss()
        if state.is_world_process_zero:
            append_jsonl(self.path, {"step": state.global_step, "loss": loss})


class SFTTrainer(Trainer):
    """Trainer + per-group learning rates + L2-SP penalty + exact per-step loss accounting."""

    def __init__(self, *args: Any, param_groups: list[dict], l2sp: float, lengths: list[int] | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._param_groups = param_groups
        self._l2sp = l2sp
        self._lengths = lengths
        # L2-SP anchors: a frozen copy of every trainable weight as it was before step 0.
        self._anchors = (
            {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad} if l2sp else {}
        )
        self._step_loss = torch.zeros((), device=self.args.device)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # transformers 5 writes some families (LLaVA) under their legacy key names, which the
        # Trainer's resume (a plain load_state_dict) does not map back, silently loading nothing:
        # checkpoints keep the in-memory names. save_tuned / export write the portable format.
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not isinstance(model, PreTrainedModel):
            return super()._save(output_dir, state_dict)
        model.save_pretrained = functools.partial(model.save_pretrained, save_original_format=False)
        try:
            super()._save(output_dir, state_dict)
        finally:
            del model.save_pretrained

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model or self.model)
            kwargs.pop("lr", None)  # each group carries its own
            self.optimizer = optimizer_cls(self._param_groups, **kwargs)
        return self.optimizer

    def _get_train_sampler(self, train_dataset=None):
        if self._lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=self._lengths)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not self._l2sp or not model.training:
            return out
        loss, outputs = out if return_outputs else (out, None)
        penalty = sum(
            (p - self._anchors[n]).pow(2).sum()
            for n, p in self.accelerator.unwrap_model(model).named_parameters()
            if n in self._anchors
        )
        # Divided by the accumulation steps so one optimizer step adds the penalty exactly once.
        loss = loss + self._l2sp * penalty / self.args.gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss = self._step_loss + loss.detach()
        return loss

    def pop_step_loss(self) -> float:
        gathered = self.accelerator.gather(self._step_loss.reshape(1)).mean()
        self._step_loss = torch.zeros((), device=self.args.device)
        return float(gathered)
