"""``mmtune align``: preference alignment of a tuned model, read top to bottom.

Validate the preferences before step 0, choose the reference (the base: adapters disabled under a
PEFT-only strategy, else a frozen copy), apply the strategy, run TRL's DPO / KTO loss (or mDPO's on
top of it) under mmtune's trainer, resume from the last complete checkpoint, save the aligned model
in ``final/`` the way SFT does, so ``mmtune eval`` / ``export`` / ``infer`` take it. GRPO, which learns
from rewards rather than preferences, is ``grpo.train_grpo``.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from transformers import set_seed
from trl import DPOConfig, KTOConfig

from mmtune.config import to_dict
from mmtune.data.preferences import Preference, read_preferences, validate_preferences
from mmtune.data.validate import DEFAULT_MAX_PIXELS
from mmtune.files import atomic_write_json, read_jsonl
from mmtune.models import load_model, resolve_groups
from mmtune.recipes.align.collate import PairCollator, UnpairedCollator, index_dataset, unpaired
from mmtune.recipes.align.config import AlignConfig, ObjectiveConfig
from mmtune.recipes.align.mdpo import MDPOCollator, MDPOTrainer
from mmtune.recipes.align.pairwise import (
    DPOAlignTrainer,
    KTOAlignTrainer,
    PreferenceStepLog,
    adapters_are_the_reference,
    frozen_reference,
)
from mmtune.recipes.divergence import DivergenceGuard
from mmtune.recipes.sft import (
    LOSS_LOG,
    SFTResult,
    TrainingConfig,
    _is_main_process,
    _peak_memory_mb,
    _resume_checkpoint,
    _save_final,
    _training_arguments,
    run_training,
)
from mmtune.strategies import apply_strategy, optimizer_param_groups
from mmtune.strategies.registry import ResolvedStrategy, resolve

logger = logging.getLogger(__name__)


def _trainer_parts(objective: ObjectiveConfig, prefs: list[Preference], processor: Any, training: TrainingConfig
                   ) -> tuple[type, Any, Any, dict[str, Any], dict[str, Any], list[Preference]]:
    """(trainer class, TRL config class, collator, TRL loss settings, trainer arguments, records in training
    order) of a method."""
    if objective.method == "kto":
        records = unpaired(prefs)
        # TRL's KL estimate pairs each record with its batch neighbour, so KTO reads records in order:
        # shuffled once here under the run's seed instead of by the sampler.
        random.Random(training.seed).shuffle(records)
        with_kl = objective.loss_type == "kto"
        settings = {"loss_type": objective.loss_type, "beta": objective.beta,
                    "desirable_weight": objective.desirable_weight,
                    "undesirable_weight": objective.undesirable_weight}
        return (KTOAlignTrainer, KTOConfig, UnpairedCollator(records, processor, training.max_length, with_kl),
                settings, {}, records)
    unpaired_ids = [p.id for p in prefs if not p.is_paired]
    if unpaired_ids:
        raise ValueError(f"objective.method={objective.method} needs chosen/rejected pairs; records "
                         f"{', '.join(map(repr, unpaired_ids[:5]))} are unpaired (completion + label): use "
                         "method kto, or pair them")
    settings = {"loss_type": [objective.loss_type], "beta": objective.beta,
                "label_smoothing": objective.label_smoothing}
    if objective.method == "mdpo":
        collator = MDPOCollator(prefs, processor, training.max_length, objective.corruption, training.seed)
        return MDPOTrainer, DPOConfig, collator, settings, {"anchor_delta": objective.anchor_delta}, prefs
    return DPOAlignTrainer, DPOConfig, PairCollator(prefs, processor, training.max_length), settings, {}, prefs


@dataclass
class PreparedRun:
    """A preference trainer ready to train, with what the run records about it."""

    trainer: Any  # DPOAlignTrainer | KTOAlignTrainer | MDPOTrainer
    strategy: ResolvedStrategy
    summary: Any  # strategies.StrategySummary
    num_valid: int  # preference records that passed validation (KTO trains on pairs split in two)


def build_trainer(
    model: nn.Module,
    processor: Any,
    prefs: Sequence[Preference],
    *,
    objective: ObjectiveConfig,
    strategy: str | ResolvedStrategy,
    output_dir: str | Path,
    training: TrainingConfig,
    skip_invalid: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedRun:
    """Validate ``prefs`` (before step 0), choose the reference, apply the strategy, build the TRL-based trainer."""
    if objective.method == "grpo":
        raise ValueError("objective.method=grpo learns from rewards, not preferences: run it with "
                         "mmtune.recipes.align.grpo.train_grpo (or `mmtune align` with method: grpo)")
    strategy = resolve(strategy)
    valid = validate_preferences(prefs, processor, max_length=training.max_length, skip_invalid=skip_invalid,
                                 max_pixels=max_pixels)
    if not valid:
        raise ValueError("no preference records left after validation; check the data files")
    trainer_cls, args_cls, collator, settings, extra, records = _trainer_parts(objective, valid, processor, training)
    set_seed(training.seed)  # new modules (LoRA, adapters) are initialised under the run's seed
    reference = None if adapters_are_the_reference(strategy) else frozen_reference(model)
    groups = resolve_groups(model)
    model, summary = apply_strategy(model, strategy, groups)
    logger.info("%s", summary.table())
    if training.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    args = _training_arguments(training, Path(output_dir), args_cls, max_length=training.max_length, **settings)
    trainer = trainer_cls(
        model=model,
        ref_model=reference,
        args=args,
        data_collator=collator,
        train_dataset=index_dataset(len(records)),
        processing_class=processor,
        param_groups=optimizer_param_groups(model, groups, training.lr, training.group_lr,
                                            weight_decay=training.weight_decay),
        lengths=None,
        **extra,
    )
    return PreparedRun(trainer, strategy, summary, len(valid))


def train_align(
    model: nn.Module,
    processor: Any,
    prefs: Sequence[Preference],
    *,
    objective: ObjectiveConfig,
    strategy: str | ResolvedStrategy,
    output_dir: str | Path,
    training: TrainingConfig,
    resume: bool = False,
    skip_invalid: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_pickle: bool = False,
) -> SFTResult:
    """Align ``model`` on ``prefs`` with ``objective``; checkpoints in ``output_dir``, result in ``output_dir/final``.

    ``losses`` of the result is the objective per optimizer step; ``output_dir/losses.jsonl`` also holds
    each step's rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies (TRL's metrics).
    ``resume`` continues from the newest complete ``checkpoint-*`` with the same losses as an
    uninterrupted run.
    """
    output_dir = Path(output_dir)
    run = build_trainer(model, processor, prefs, objective=objective, strategy=strategy, output_dir=output_dir,
                        training=training, skip_invalid=skip_invalid, max_pixels=max_pixels)
    trainer, summary = run.trainer, run.summary
    checkpoint = _resume_checkpoint(output_dir) if resume else None
    loss_log = output_dir / LOSS_LOG
    step_log = PreferenceStepLog(trainer, loss_log)
    trainer.add_callback(step_log)
    trainer.add_callback(DivergenceGuard(output_dir, training.divergence_factor, step_log, trainer))
    train_seconds = run_training(trainer, checkpoint, allow_pickle, threads=training.cpu_threads)

    step = trainer.state.global_step
    main = trainer.is_world_process_zero()
    steps = [r for r in read_jsonl(loss_log) if r["step"] <= step] if main else []
    result = SFTResult(model=trainer.model, summary=summary, losses=[r["loss"] for r in steps],
                       output_dir=output_dir, train_seconds=train_seconds, peak_memory_mb=_peak_memory_mb())
    if main:
        meta = {
            "recipe": "align",
            "objective": dataclasses.asdict(objective),
            "training": dataclasses.asdict(training),
            "reference": "adapters disabled" if trainer.ref_model is None else "frozen copy of the base",
            "num_records": run.num_valid,
            "num_skipped": len(prefs) - run.num_valid,
            "steps": step,
            "world_size": trainer.args.world_size,
            "losses": result.losses,
            "log": steps,
            "train_seconds": train_seconds,
            "peak_memory_mb": result.peak_memory_mb,
            "summary": summary.to_dict(),
        }
        _save_final(trainer.model, processor, output_dir, run.strategy, meta)
    trainer.accelerator.wait_for_everyone()
    return result


def run_align(config: AlignConfig, *, resume: bool = False, allow_pickle: bool = False) -> SFTResult:
    """Load the model and the data named by ``config``, then ``train_align`` (or GRPO's ``train_grpo``)."""
    loaded = load_model(config.model, allow_pickle=allow_pickle)
    output_dir = Path(config.output_dir)
    if _is_main_process():
        atomic_write_json(output_dir / "align_config.json", to_dict(config))
    if config.objective.method == "grpo":
        from mmtune.data.readers import read_records
        from mmtune.recipes.align.grpo import train_grpo

        samples = [s for source in config.data for s in read_records(source.path, source.root, source.format)]
        return train_grpo(loaded.model, loaded.processor, samples, config.grpo_settings(), output_dir,
                          resume=resume, allow_pickle=allow_pickle)
    prefs = [p for source in config.data for p in read_preferences(source.path, source.root, source.format)]
    return train_align(
        loaded.model, loaded.processor, prefs,
        objective=config.objective, strategy=config.strategy, output_dir=output_dir, training=config.training,
        resume=resume, skip_invalid=config.validation.skip_invalid, max_pixels=config.validation.max_pixels,
        allow_pickle=allow_pickle,
    )
