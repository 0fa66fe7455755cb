"""GRPO (Shao et al. 2024) with verifiable rewards, on TRL's ``GRPOTrainer`` and mmtune's models.

For each prompt the policy samples G completions; each is scored by the rewards of
``mmtune.recipes.align.rewards`` (the eval task's own answer score, IoU for boxes, a format check);
the advantage of a completion is its reward standardised within its group, (r - mean) / std, and
TRL's clipped policy-ratio loss (epsilon) with a KL penalty to the reference (beta) is minimised.

TRL brings generation, advantages and the loss. mmtune adds what it lacks for its models: any
``mmtune strategies`` spec applied as in SFT (per-group learning rates, atomic checkpoints, exact
resume, per-step loss log, through ``SFTTrainer``), a reference that is the base with adapters
disabled when only a PEFT adapter trains (TRL would copy the adapter) or a frozen copy of the base
otherwise (TRL would reload it from a hub name the tiny models do not have), and a per-step reward
log. Checkpoints are the same as SFT's: ``mmtune eval``, ``export`` and ``infer`` load ``final/``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Features, Image, List, Value
from torch import nn
from torch.utils.data import Sampler
from transformers import TrainerCallback, set_seed
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

from mmtune.data.sample import Sample, assistant_turn, content_parts
from mmtune.data.validate import DEFAULT_MAX_PIXELS
from mmtune.eval.metrics.grounding import box_format_for
from mmtune.files import append_jsonl, atomic_write_text, read_jsonl
from mmtune.models import resolve_groups
from mmtune.models.generic import unwrap
from mmtune.recipes.align.rewards import REWARDS, check_rewardable, judge
from mmtune.recipes.divergence import DivergenceGuard
from mmtune.recipes.sft import (
    LOSS_LOG,
    SCHEDULERS,
    SFTResult,
    _has_accelerator,
    _peak_memory_mb,
    _resume_checkpoint,
    _save_final,
    _use_bf16,
    checked_samples,
    run_training,
)
from mmtune.recipes.trainer import SFTTrainer, StepLossLog
from mmtune.strategies import apply_strategy, optimizer_param_groups
from mmtune.strategies.registry import ResolvedStrategy, resolve
from mmtune.tracking import TRACKERS, check_report_to, default_report_to

logger = logging.getLogger(__name__)

REWARD_LOG = "rewards.jsonl"
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")


@dataclass
class GRPOSettings:
    """One GRPO run; names as TRL's ``GRPOConfig`` has them where it has them. Defaults suit tiny CPU runs."""

    strategy: str = field(default="lora(r=16, alpha=32, groups=llm)", metadata={"help": "see `mmtune strategies`"})
    num_generations: int = field(default=4, metadata={"help": "G: completions sampled per prompt"})
    beta: float = field(default=0.04, metadata={"help": "KL coefficient to the reference; 0 = no reference"})
    epsilon: float = field(default=0.2, metadata={"help": "clipping of the policy ratio to [1 - eps, 1 + eps]"})
    loss_type: str = field(default="grpo", metadata={
        "help": f"TRL's normalisation of the token losses, one of {', '.join(LOSS_TYPES)}; grpo = the paper's "
                "mean over each completion's tokens"})
    scale_rewards: str = field(default="group", metadata={
        "help": f"divide advantages by the reward std of the {' / '.join(SCALE_REWARDS)}"})
    reward_weights: dict[str, float] = field(
        default_factory=lambda: {"answer": 1.0, "format": 0.5},
        metadata={"help": f"weight of each verifiable reward ({', '.join(REWARDS)}); the sum is the reward"})
    max_completion_length: int | None = field(default=None, metadata={
        "help": "tokens generated per completion at most; default: the max_new_tokens `mmtune eval` answers the "
                "samples' tasks with (the longest of them)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the completions"})
    lr: float = field(default=1e-5, metadata={"help": "peak learning rate of the trainable parameters"})
    group_lr: dict[str, float] = field(default_factory=dict, metadata={"help": "learning rate per group"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps to run"})
    batch_size: int = field(default=8, metadata={"help": "completions per device per micro-batch, a multiple of G"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr_scheduler: str = field(default="constant", metadata={"help": f"one of {', '.join(SCHEDULERS)}"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of steps warming the lr up from 0"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seeds new modules, data order and sampling"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (resumable); 0 = never"})
    bf16: bool = field(default=True, metadata={"help": "bf16 where the GPU supports it; never on CPU"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    skip_invalid: bool = field(default=False, metadata={"help": "drop invalid records (listed) instead of failing"})
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "refuse images with more pixels"})
    report_to: list[str] = field(default_factory=default_report_to, metadata={
        "help": f"experiment trackers the losses and rewards go to: any of {', '.join(TRACKERS)}, or [none]; "
                "default tensorboard when installed (event files in output_dir/runs), else none"})
    run_name: str = field(default="", metadata={"help": "the run's name in the trackers (default: the output folder's)"})

    def __post_init__(self) -> None:
        self.report_to = check_report_to(self.report_to, "grpo.report_to")
        for name in ("beta", "epsilon", "temperature", "lr", "warmup_ratio", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"grpo.{name} must be a finite number >= 0, got {value!r}")
        for name in ("num_generations", "max_completion_length", "max_steps", "batch_size", "grad_accum"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"grpo.{name} must be > 0, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ValueError(f"grpo.num_generations must be >= 2, got {self.num_generations}: advantages compare "
                             "completions within a group")
        if self.batch_size % self.num_generations:
            raise ValueError(f"grpo.batch_size={self.batch_size} must be a multiple of num_generations="
                             f"{self.num_generations}: each micro-batch holds whole groups of completions")
        if self.lr == 0 or self.temperature == 0:
            raise ValueError("grpo.lr and grpo.temperature must be > 0 (temperature 0 makes every completion "
                             "of a group the same, so every advantage 0)")
        choices = {"loss_type": LOSS_TYPES, "scale_rewards": SCALE_REWARDS, "lr_scheduler": SCHEDULERS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"grpo.{name}={getattr(self, name)!r} is unknown; use one of {', '.join(allowed)}")
        unknown = sorted(set(self.reward_weights) - set(REWARDS))
        if unknown:
            raise ValueError(f"grpo.reward_weights: {', '.join(unknown)} are no rewards; use {', '.join(REWARDS)}")
        if not any(self.reward_weights.values()):
            raise ValueError(f"grpo.reward_weights: give at least one of {', '.join(REWARDS)} a weight other than 0")
        if self.save_steps < 0:
            raise ValueError(f"grpo.save_steps must be >= 0, got {self.save_steps}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"grpo.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


class GRPORunTrainer(SFTTrainer, GRPOTrainer):
    """TRL's ``GRPOTrainer`` (generation, advantages, loss: unchanged) under mmtune's ``SFTTrainer``
    (per-group learning rates, atomic checkpoints, exact resume, per-step loss), with the reference
    given by the caller: ``reference=None`` and a PEFT model means the adapters disabled."""

    def __init__(self, *args: Any, reference: nn.Module | None, **kwargs: Any) -> None:
        grpo_args: GRPOConfig = kwargs["args"]
        beta = grpo_args.beta
        # With beta 0 TRL neither copies a PEFT adapter as "ref" nor reloads the base from its hub
        # name; the reference it would build is set below instead.
        grpo_args.beta = 0.0
        super().__init__(*args, **kwargs)
        grpo_args.beta = self.beta = beta
        if beta and reference is not None:
            reference.requires_grad_(False)
            if grpo_args.disable_dropout:
                disable_dropout_in_model(reference)
            add_fused_lm_head(reference, temperature=self.temperature)
            self.ref_model = self.accelerator.prepare_model(reference, evaluation_mode=True)

    def _get_train_sampler(self, dataset=None):
        return EpochSeededSampler(super()._get_train_sampler(dataset))

    def _send_telemetry(self) -> None:
        """mmtune runs offline by design: a training run never reports itself to the Hub."""


class EpochSeededSampler(Sampler):
    """TRL's ``RepeatSampler`` with each epoch's shuffle drawn from (seed, epoch).

    TRL draws every epoch's order from one generator that a checkpoint does not keep, so a run
    resumed in a later epoch would see the prompts in the first epoch's order; reseeding per epoch
    gives the resumed run the uninterrupted run's prompts, hence its completions and losses.
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        if self.sampler.shuffle:
            self.sampler.generator.manual_seed(self.sampler.seed + epoch)

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class RewardLog(TrainerCallback):
    """Appends each step's reward mean and std (overall and per reward), KL and clip ratio to ``rewards.jsonl``.

    TRL logs them every ``logging_steps`` (1 here); rows after a resumed step are dropped and rerun.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            kept = [r for r in read_jsonl(self.path) if r["step"] <= state.global_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        keep = ("reward", "reward_std", "kl", "clip_ratio/region_mean", "frac_reward_zero_std", "completions/mean_length")
        row = {"step": state.global_step, **{k: v for k, v in logs.items() if k in keep or k.startswith("rewards/")}}
        append_jsonl(self.path, row)


def _prompt_dataset(samples: Sequence[Sample]) -> Dataset:
    """TRL's conversational vision format: the prompt turns (image parts as placeholders), the prompt's
    images, and each row's index into ``samples`` so rewards find its references. Image files stay
    paths, opened as RGB when a batch needs them; in-memory images are stored encoded."""
    image = Image(mode="RGB")
    prompts, images = [], []
    for s in samples:
        messages = [{"role": m["role"], "content": content_parts(m)} for m in s.prompt_messages()]
        n = sum(p.get("type") == "image" for m in messages for p in m["content"])
        prompts.append(messages)
        images.append([image.encode_example(str(ref) if isinstance(ref, Path) else ref) for ref in s.images[:n]])
    columns = Features({"images": List(image), "sample_index": Value("int64")})
    dataset = Dataset.from_dict({"images": images, "sample_index": list(range(len(samples)))}, features=columns)
    return dataset.add_column("prompt", prompts)


def _trl_rewards(samples: Sequence[Sample], box_format: str, names: list[str]) -> list:
    """One TRL reward function per named reward: completions of a batch -> their rewards."""

    def make(name: str):
        reward = REWARDS[name]

        def score(completions: list, sample_index: list[int], **_: Any) -> list[float]:
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return [reward(_text(t), samples[i], box_format) for t, i in zip(texts, sample_index)]

        score.__name__ = name  # TRL logs rewards/<name>/mean and /std
        return score

    return [make(name) for name in names]


def _text(content: Any) -> str:
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _grpo_args(config: GRPOSettings, output_dir: Path, max_completion_length: int) -> GRPOConfig:
    return GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_generations=config.num_generations,
        max_completion_length=max_completion_length,
        temperature=config.temperature,
        beta=config.beta,
        epsilon=config.epsilon,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        reward_weights=[w for w in config.reward_weights.values() if w],  # zero-weight rewards are not computed
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a share of the total steps
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 1,
        logging_steps=1,  # the reward log has a row per step
        bf16=_use_bf16(config.bf16),
        gradient_checkpointing=config.gradient_checkpointing,
        remove_unused_columns=False,
        report_to=config.report_to,
        run_name=config.run_name or output_dir.name,
        use_cpu=not _has_accelerator(),
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=True,
    )


def _reference(model: nn.Module, strategy: ResolvedStrategy, beta: float) -> nn.Module | None:
    """A frozen copy of the base, taken before the strategy changes it, unless none is needed: no
    KL term, or only a PEFT adapter trains (then the base is the model with adapters disabled)."""
    if not beta or all(entry.uses_peft for _, entry, _ in strategy.parts):
        return None
    return copy.deepcopy(unwrap(model)).eval()


@dataclass
class GRPORun:
    """A GRPO trainer ready to train, and what the run's record needs about it."""

    trainer: GRPORunTrainer
    summary: Any  # strategies.StrategySummary
    strategy: ResolvedStrategy
    reference: str  # how the KL reference is obtained, for the run's record
    num_samples: int
    step_losses: StepLossLog


def prepare_grpo(model: nn.Module, processor: Any, samples: Sequence[Sample], config: GRPOSettings,
                 output_dir: str | Path) -> GRPORun:
    """Validate the prompts and their rewards before step 0, apply the strategy, build the trainer."""
    output_dir = Path(output_dir)
    strategy = resolve(config.strategy)
    groups = resolve_groups(model)
    box_format = box_format_for(groups.family.box_format, processor)
    checked = checked_samples([_answered(s) for s in samples], processor, None, config.skip_invalid, config.max_pixels)
    train_samples = [dataclasses.replace(s, messages=s.prompt_messages()) for s in checked]
    if not train_samples:
        raise ValueError("no GRPO prompts left after validation; check the data sources")
    check_rewardable(train_samples, box_format)
    set_seed(config.seed)
    reference = _reference(model, strategy, config.beta)
    model, summary = apply_strategy(model, strategy, groups)
    logger.info("%s", summary.table())

    length = config.max_completion_length or max(judge(s, box_format).generation.max_new_tokens for s in train_samples)
    trainer = GRPORunTrainer(
        model=model,
        reward_funcs=_trl_rewards(train_samples, box_format, [name for name, w in config.reward_weights.items() if w]),
        args=_grpo_args(config, output_dir, length),
        train_dataset=_prompt_dataset(train_samples),
        processing_class=processor,
        reference=reference,
        param_groups=optimizer_param_groups(model, groups, config.lr, config.group_lr,
                                            weight_decay=config.weight_decay),
        lengths=None,
    )
    step_losses = StepLossLog(trainer, output_dir / LOSS_LOG)
    trainer.add_callback(step_losses)
    trainer.add_callback(RewardLog(output_dir / REWARD_LOG))
    # factor 0: only a non-finite loss or gradient stops the run (a GRPO loss has no scale to grow from)
    trainer.add_callback(DivergenceGuard(output_dir, 0.0, step_losses, trainer))
    if not config.beta:
        described = "none (beta 0)"
    else:
        described = "the base, frozen copy" if reference is not None else "the base, adapters disabled"
    return GRPORun(trainer, summary, strategy, described, len(train_samples), step_losses)


def train_grpo(model: nn.Module, processor: Any, samples: Sequence[Sample], config: GRPOSettings,
               output_dir: str | Path, resume: bool = False, allow_pickle: bool = False) -> SFTResult:
    """Align ``model`` on ``samples``' prompts with GRPO; checkpoints in ``output_dir``, result in ``final/``.

    Each sample is a prompt (its last assistant turn, if any, is dropped) with references in ``meta``
    as in eval samples. ``resume`` continues from the newest complete ``checkpoint-*``. Writes
    ``losses.jsonl`` (the GRPO objective per step) and ``rewards.jsonl`` (reward mean/std per step).
    """
    output_dir = Path(output_dir)
    run = prepare_grpo(model, processor, samples, config, output_dir)
    trainer = run.trainer
    checkpoint = _resume_checkpoint(output_dir) if resume else None
    train_seconds = run_training(trainer, checkpoint, allow_pickle)

    step = trainer.state.global_step
    main = trainer.is_world_process_zero()
    losses = [r["loss"] for r in read_jsonl(output_dir / LOSS_LOG) if r["step"] <= step] if main else []
    result = SFTResult(model=trainer.model, summary=run.summary, losses=losses, output_dir=output_dir,
                       train_seconds=train_seconds, peak_memory_mb=_peak_memory_mb())
    if main:
        meta = {
            "recipe": "grpo",
            "grpo": dataclasses.asdict(config),
            "reference": run.reference,
            "num_samples": run.num_samples,
            "num_skipped": len(samples) - run.num_samples,
            "steps": step,
            "world_size": trainer.args.world_size,
            "losses": losses,
            "rewards": [r for r in read_jsonl(output_dir / REWARD_LOG) if r["step"] <= step],
            "train_seconds": train_seconds,
            "peak_memory_mb": result.peak_memory_mb,
            "summary": run.summary.to_dict(),
        }
        _save_final(trainer.model, processor, output_dir, run.strategy, meta)
    trainer.accelerator.wait_for_everyone()
    return result


def _answered(sample: Sample) -> Sample:
    """``sample`` as SFT validation takes it: a prompt without a reference answer gets a stand-in
    turn, so images, placeholders and encoding are checked exactly as for SFT."""
    if sample.messages and sample.messages[-1]["role"] == "assistant":
        return sample
    return dataclasses.replace(sample, messages=[*sample.messages, assistant_turn("answer")])
