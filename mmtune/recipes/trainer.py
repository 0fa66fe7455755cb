"""The transformers Trainer, extended with what SFT of multimodal models needs and it lacks.

Per-group learning rates, the L2-SP penalty (anti-forgetting), an exact per-step loss log that
survives resume, length grouping from precomputed lengths, checkpoints that resume correctly
for families transformers saves under legacy key names and that a kill or a full disk cannot
leave half-written, and the gradient norm of each step for the divergence check.

Each step also skips the Trainer's walks over every parameter or module of the model (its FLOP
count, its gradient clipping, ``zero_grad`` and ``train()``), which on a small model cost as much as
a fifth of a step: they visit the trainable parameters, listed once per run, and give the same
results.
"""
from __future__ import annotations

import functools
import gc
import inspect
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from mmtune.data.collate import IGNORE_INDEX
from mmtune.data.sample import Sample
from mmtune.files import append_jsonl, atomic_write_text, read_jsonl, sync_file
from mmtune.recipes.checkpoints import STAGING_DIR, last_complete_checkpoint, publish_dir

# torch, transformers, accelerate and peft leave ~500,000 objects behind on import, all alive for the
# process's life; every full garbage collection walks them all: ~0.3 s, once at the start of each
# train() (accelerate's free_memory) and again whenever Python's own oldest-generation collection
# runs. Frozen (the standard library's gc.freeze, done once), collections skip them; they are never
# garbage, and objects created later are collected as before.
if gc.get_freeze_count() == 0:
    gc.freeze()


class BatchShuffledLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length grouping, then the batches in random order.

    Within each megabatch transformers orders batches by length, so in a mix of tasks whose samples
    differ in length (five-image episodes beside one-image questions) each task comes in runs of
    consecutive batches, and each run undoes what the previous one taught. Shuffling whole batches
    keeps the padding saved and interleaves the tasks."""

    def __iter__(self):
        indices = list(super().__iter__())
        batches = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield from batches[b]


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
        self.first_loss: float | None = None  # step 1's loss, the divergence rule's reference
        self.last_loss = float("nan")

    def on_train_begin(self, args, state, control, **kwargs):
        # Keep the losses up to the step resumed from (0 for a fresh run); later steps are rerun.
        kept = [r for r in read_jsonl(self.path) if r["step"] <= state.global_step]
        self.first_loss = kept[0]["loss"] if kept and kept[0]["step"] == 1 else None
        if state.is_world_process_zero:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def on_step_end(self, args, state, control, **kwargs):
        self.last_loss = self.trainer.pop_step_loss()
        if state.global_step == 1:
            self.first_loss = self.last_loss
        if state.is_world_process_zero:
            # Flushed each step (a killed process loses nothing), synced to disk with each checkpoint.
            append_jsonl(self.path, {"step": state.global_step, "loss": self.last_loss, **self.step_metrics()},
                         fsync=False)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            sync_file(self.path)

    on_train_end = on_save

    def step_metrics(self) -> dict[str, float]:
        """What else a step's record holds (``mmtune align`` adds its rewards); nothing for SFT."""
        return {}


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """Sequence positions whose logits predict a label in some row (position ``t`` predicts ``t + 1``)."""
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


def causal_lm_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None):
    """transformers' causal-LM loss (fp32 cross-entropy, summed over labelled positions and divided by
    ``num_items_in_batch``, else their mean) on logits kept at every position or at ``label_positions``."""
    logits = outputs["logits"]
    targets = labels[:, 1:]
    if logits.shape[1] == labels.shape[1]:
        logits = logits[:, :-1]
    else:
        targets = targets[:, label_positions(labels)]
    logits = logits.float().reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    loss = nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / (num_items_in_batch.to(loss.device) if torch.is_tensor(num_items_in_batch) else num_items_in_batch)


def _train_unless_training(modules: list[nn.Module], train: Any, mode: bool = True) -> nn.Module:
    """``modules[0].train(mode)``, skipped when it would change nothing (see ``_skip_parameter_walks``)."""
    if mode and all(m.training for m in modules):
        return modules[0]
    return train(mode)


def computes_only_kept_logits(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` positions that index its input sequence:
    not under prompt learning (PEFT prepends virtual tokens, which shift every position)."""
    peft_config = getattr(model, "peft_config", None)
    if peft_config and any(c.is_prompt_learning for c in peft_config.values()):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


class SFTTrainer(Trainer):
    """Trainer + per-group learning rates + the loss terms of anti-forgetting methods (L2-SP, EWC,
    LwF: ``mmtune.methods``, set up by the caller) + exact per-step loss accounting; with
    ``logits_at_labels`` (SFT's; the preference trainers built on this class compute their own losses),
    the LM head only at the positions that predict a label."""

    def __init__(self, *args: Any, param_groups: list[dict], loss_terms: Sequence[Any] = (),
                 lengths: list[int] | None, logits_at_labels: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._label_logits = logits_at_labels and self.model_accepts_loss_kwargs and all(
            not getattr(t, "reads_logits", False) for t in loss_terms) and computes_only_kept_logits(self.model)
        if self._label_logits:
            self.compute_loss_func = causal_lm_loss  # the loss from the kept logits (see compute_loss)
        self._param_groups = param_groups
        self._loss_terms = list(loss_terms)
        self._lengths = lengths
        self._step_loss = torch.zeros((), device=self.args.device)
        self.last_grad_norm: float | None = None
        self._penalty = torch.zeros((), device=self.args.device)
        self._staging = False
        self._trainable: list[nn.Parameter] | None = None  # listed once per train()
        self._flop_params: int | None = None
        self._patched: list[tuple[nn.Module, str]] = []  # (model, method) replaced for this train()

    # Where accelerate clips over the parameters it is given (no FSDP / DeepSpeed / XLA sharding).
    _PLAIN = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)

    def train(self, *args: Any, **kwargs: Any):
        self._trainable, self._flop_params = None, None
        try:
            return super().train(*args, **kwargs)
        finally:
            for model, name in self._patched:
                delattr(model, name)
            self._patched = []

    def _plain(self, model: nn.Module) -> bool:
        return self.accelerator.distributed_type in self._PLAIN and not self._has_mixed_mesh_grads(model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        if self._trainable is None:
            self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        return self._trainable

    def _clip_grad_norm(self, model):
        if not self._plain(model):
            return super()._clip_grad_norm(model)
        # Frozen parameters have no gradient, which clipping skips: the same norm, the same clipping.
        return self.accelerator.clip_grad_norm_(self.trainable_parameters(), self.args.max_grad_norm)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        # The Trainer counts the model's parameters at every step; the count does not change in a run.
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._flop_params is None:
            self._flop_params = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main].numel() * self._flop_params

    def _skip_parameter_walks(self, model: nn.Module) -> None:
        """The Trainer's loop calls ``model.zero_grad()`` after each step and ``model.train()`` before
        it, each a walk over every module: gradients are zeroed on the trainable parameters only (the
        others have none), and ``train()`` does nothing where every module is already training and no
        module's ``train`` does more than set the flag (DoRA's clears a cache). Undone when train() returns."""
        model.zero_grad = self._zero_trainable_grads
        self._patched.append((model, "zero_grad"))
        modules = list(model.modules())
        if all(type(m).train in (nn.Module.train, PreTrainedModel.train) for m in modules):
            model.train = functools.partial(_train_unless_training, modules, model.train)
            self._patched.append((model, "train"))

    def _zero_trainable_grads(self, set_to_none: bool = True) -> None:
        for p in self.trainable_parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return str(Path(run_dir) / STAGING_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model: nn.Module, trial) -> None:
        """The Trainer's checkpoint, written under ``.partial/`` and renamed into place once complete.

        A kill mid-write leaves only ``.partial/`` (cleared by the next save); a failed write (full
        disk) removes it and says which complete checkpoint is still there to resume from.
        """
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged = run_dir / STAGING_DIR / name
        if self.args.should_save:
            shutil.rmtree(staged, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # every process has written its part (RNG states)
            if self.args.should_save:
                publish_dir(staged, run_dir / name)
        except OSError as e:
            shutil.rmtree(staged, ignore_errors=True)
            kept, _ = last_complete_checkpoint(run_dir)
            resume_from = f"{kept} is the last complete checkpoint" if kept else "no checkpoint is complete yet"
            raise OSError(e.errno, f"writing {run_dir / name} failed ({e.strerror or e}); {resume_from}; "
                                   "fix that (e.g. free disk space) and rerun with --resume") from e
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()

    def _run_epoch(self, *args: Any, **kwargs: Any):
        # Resumed from the last step's checkpoint, the Trainer would run one step past max_steps
        # (it checks the limit only after a step): such a run has nothing left to train.
        if self.state.global_step >= self.state.max_steps > 0:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm)
        self.last_grad_norm = None if grad_norm is None else float(grad_norm)
        return grad_norm

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
        return BatchShuffledLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                                 lengths=self._lengths)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self._label_logits and model.training:
            # The LM head runs only where a label is predicted (a few % of positions on VQA data);
            # the loss is the same sum over those positions, divided by the same token count.
            inputs = {**inputs, "logits_to_keep": label_positions(inputs["labels"])}
        if not self._loss_terms or not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        unwrapped = self.accelerator.unwrap_model(model)
        penalty = sum(term.penalty(unwrapped, inputs, outputs) for term in self._loss_terms)
        self._penalty = penalty.detach()
        # Divided by the accumulation steps so one optimizer step adds the penalty exactly once.
        loss = loss + penalty / self.args.gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not any(m is model for m, _ in self._patched) and self._plain(model):
            self._skip_parameter_walks(model)
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss = self._step_loss + loss.detach()
        return loss

    @property
    def last_penalty(self) -> float:
        """The methods' terms in the last step's objective (0 without them), to compare task losses alone."""
        return float(self._penalty)

    def pop_step_loss(self) -> float:
        step_loss = self._step_loss.reshape(1)
        gathered = (self.accelerator.gather(step_loss) if self.accelerator.num_processes > 1 else step_loss).mean()
        self._step_loss = torch.zeros((), device=self.args.device)
        return float(gathered)
