"""Supervised fine-tuning (alignment pre-training and instruction tuning) on the transformers Trainer.

Read top to bottom: apply the strategy, validate the data before step 0, build the Trainer (per-group
learning rates, the loss terms of anti-forgetting methods, per-step loss log, divergence stop), train or resume from
the last complete checkpoint, save the tuned model. The Trainer brings schedules, gradient
accumulation, mixed precision, checkpoint/resume and DDP/FSDP via accelerate; this module adds
only what it lacks.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    TrainingArguments,
    set_seed,
)
from transformers.trainer import TRAINING_ARGS_NAME

from mmtune.config import ConfigError, to_dict
from mmtune.data.collate import SFTCollator
from mmtune.data.mixing import DataSourceConfig, load_sources, mix_sources
from mmtune.data.sample import Sample
from mmtune.data.validate import DEFAULT_MAX_PIXELS, check_max_pixels, validate_samples
from mmtune.files import atomic_write_json, read_jsonl
from mmtune.methods.base import LossContext, Method, resolve_methods
from mmtune.model_card import write_card
from mmtune.models import load_model, resolve_groups
from mmtune.models.loading import pickle_files, trusted_pickles
from mmtune.models.quantization import QuantizationConfig
from mmtune.recipes.checkpoints import STAGING_DIR, last_complete_checkpoint, publish_dir
from mmtune.recipes.divergence import DivergenceGuard
from mmtune.recipes.threads import AUTO as AUTO_THREADS
from mmtune.recipes.threads import check_cpu_threads, cpu_threads
from mmtune.recipes.trainer import SampleDataset, SFTTrainer, StepLossLog
from mmtune.strategies import apply_strategy, optimizer_param_groups
from mmtune.strategies.checkpoint import read_mmtune_record, save_tuned
from mmtune.strategies.registry import ResolvedStrategy, resolve
from mmtune.tracking import TRACKERS, check_report_to, default_report_to, route_logs

logger = logging.getLogger(__name__)

LOSS_LOG = "losses.jsonl"
FINAL_DIR = "final"
# Each training sample's encoding is kept after its first batch (later epochs only pad and stack),
# up to this many bytes of tensors per run; beyond it batches are encoded as they come.
COLLATE_CACHE_BYTES = 1 << 30
LOGS_DIR = "runs"  # the trackers' local files (TensorBoard event files), as the Trainer names it
# Where a run is logged and on how many CPU threads, not what it computes: left out of the settings a
# finished run is matched by.
TRACKING_FIELDS = ("report_to", "run_name", "cpu_threads")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")


@dataclass
class TrainingConfig:
    """Optimisation settings of one SFT run; defaults suit tiny CPU runs, configs scale them up."""

    lr: float = field(default=1e-4, metadata={"help": "peak learning rate of the trainable parameters"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps to run; -1 = use epochs"})
    batch_size: int = field(default=4, metadata={"help": "samples per device per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr_scheduler: str = field(default="cosine", metadata={"help": f"one of {', '.join(SCHEDULERS)}"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps warming the lr up from 0"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seeds weights of new modules, data order, dropout"})
    save_steps: int = field(default=500, metadata={"help": "checkpoint every N steps (resumable); 0 = never"})
    logging_steps: int = field(default=10, metadata={"help": "print the loss every N steps"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast where the GPU supports it; never on CPU"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    group_lr: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "learning rate per group, e.g. {projector: 2e-5}; others use lr"},
    )
    max_length: int | None = field(default=None, metadata={"help": "tokens per sample; longer ones are cut"})
    group_by_length: bool = field(default=False, metadata={"help": "batch samples of similar length together"})
    dataloader_workers: int = field(
        default=0, metadata={"help": "processes that collate batches (image loading, tokenization) beside training"}
    )
    logits_at_labels: bool = field(
        default=True,
        metadata={"help": "compute the LM head only where a label is predicted (the loss is the same to float "
                          "rounding; on a large vocabulary far less memory and time); false: at every position"},
    )
    divergence_factor: float = field(
        default=100.0,
        metadata={"help": "stop when a step's loss exceeds this many times the first step's loss (taken as at "
                          "least 1.0); 0 = stop only on a non-finite loss or gradient norm"},
    )
    report_to: list[str] = field(
        default_factory=default_report_to,
        metadata={"help": f"experiment trackers the losses and scores go to: any of {', '.join(TRACKERS)}, or "
                          "[none]; default tensorboard when installed (event files in output_dir/runs), else none"},
    )
    run_name: str | None = field(default=None, metadata={
        "help": "the run's name in the trackers; default the output folder's name"})
    cpu_threads: int | str | None = field(default=AUTO_THREADS, metadata={
        "help": "torch threads on a CPU: auto = the cores no other process is using at the start (beside a "
                "busy process, all-core training runs ~3x slower than one thread; kept when OMP_NUM_THREADS "
                "is set), a number, or null for torch's own count"})

    def __post_init__(self) -> None:
        for name in ("lr", "epochs", "warmup_ratio", "weight_decay", "divergence_factor"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"training.{name} must be a finite number, got {value!r}")
        positive = {"lr": self.lr, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "logging_steps": self.logging_steps}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"training.{name} must be > 0, got {value}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ValueError("set training.epochs > 0 or training.max_steps > 0, else nothing trains")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"training.lr_scheduler={self.lr_scheduler!r} is unknown; use one of {', '.join(SCHEDULERS)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("weight_decay", "save_steps", "dataloader_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"training.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length <= 0:
            raise ValueError(f"training.max_length must be > 0 or null, got {self.max_length}")
        for group, lr in self.group_lr.items():
            if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
                raise ValueError(f"training.group_lr.{group} must be a learning rate >= 0, got {lr!r}")
        self.group_lr = {g: float(v) for g, v in self.group_lr.items()}
        if 0 < self.divergence_factor <= 1:
            raise ValueError(f"training.divergence_factor must be 0 (off) or > 1, got {self.divergence_factor}: "
                             "a factor <= 1 stops on ordinary loss noise")
        self.report_to = check_report_to(self.report_to)
        check_cpu_threads(self.cpu_threads)


def training_settings(training: TrainingConfig) -> dict[str, Any]:
    """The settings a run's result depends on: every field of ``training`` but where the run is logged
    (so finished runs recorded before the trackers existed still match); ``logits_at_labels`` only when
    on (runs recorded before it existed computed the head everywhere)."""
    settings = {k: v for k, v in dataclasses.asdict(training).items() if k not in TRACKING_FIELDS}
    if not settings["logits_at_labels"]:
        del settings["logits_at_labels"]
    return settings


@dataclass
class ValidationConfig:
    """What to do with records that fail validation."""

    skip_invalid: bool = field(default=False, metadata={"help": "drop invalid records (listed) instead of failing"})
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "refuse images with more pixels than this"})

    def __post_init__(self) -> None:
        check_max_pixels(self.max_pixels)


@dataclass
class SFTConfig:
    """An SFT run as written in YAML: base checkpoint, data sources, strategy, training settings."""

    model: str = field(default="", metadata={"help": "local checkpoint directory of the base model"})
    model_quantization: QuantizationConfig | None = field(default=None, metadata={
        "help": "load the base in 4 or 8 bits (QLoRA), e.g. {bits: 4, type: nf4, double_quant: true}; "
                "needs bitsandbytes (pip install 'mmtune[qlora]') and a strategy that leaves the base frozen"})
    data: list[DataSourceConfig] = field(default_factory=list, metadata={"help": "sources mixed by ratio"})
    strategy: str = field(default="lora(r=16, alpha=32, groups=llm)", metadata={"help": "see `mmtune strategies`"})
    methods: list[str] = field(default_factory=list, metadata={
        "help": "anti-forgetting methods, e.g. [replay(fraction=0.2), ewc(weight=100)] (see `mmtune methods`)"})
    seen_data: list[DataSourceConfig] = field(default_factory=list, metadata={
        "help": "general (seen) data that replay mixes in and EWC estimates its Fisher on"})
    output_dir: str = field(default="runs/sft", metadata={"help": "checkpoints here, the tuned model in final/"})
    training: TrainingConfig = field(default_factory=TrainingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("config key model is required: the directory of the base checkpoint")
        if not self.data:
            raise ConfigError("config key data is required: a list of sources, e.g. [{path: train.jsonl}]")
        try:
            methods = resolve_methods(self.methods)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"config key methods: {e.args[0] if e.args else e}") from e
        train_time(methods)
        needs_seen = [m.label for m in methods if m.entry.needs_seen_data]
        if needs_seen and not self.seen_data:
            raise ConfigError(f"config key methods: {', '.join(needs_seen)} need seen data; "
                              "list it under seen_data: [{path: general.json}]")


@dataclass
class SFTResult:
    """What a run produced: the tuned model, its strategy summary, per-step losses and costs.

    ``losses`` is the optimised objective per optimizer step (token-mean loss over all processes,
    plus the terms of loss-phase methods), from step 1 even after a resume; empty on non-zero ranks.
    """

    model: nn.Module
    summary: Any  # strategies.StrategySummary
    losses: list[float]
    output_dir: Path
    train_seconds: float
    peak_memory_mb: float
    eval_loss: float | None = None

    @property
    def final_dir(self) -> Path:
        return self.output_dir / FINAL_DIR


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def _use_bf16(requested: bool) -> bool:
    return requested and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


_PROC_STATUS, _PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _reset_peak_memory() -> None:
    """Start counting peak memory from now: CUDA's peak, or on Linux the process's RSS high-water mark
    (``clear_refs`` 5). Without the reset a worker process's peak would carry what it inherited: Linux
    keeps ``ru_maxrss`` across fork and exec, so a bench worker spawned after pre-training reported
    the parent's 1.8 GB on every run."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:  # not Linux, or /proc read-only: the lifetime peak below
        pass


def _peak_memory_mb() -> float:
    """Peak memory since ``_reset_peak_memory``: CUDA's allocated peak on a GPU; on a CPU the RSS
    high-water mark (Linux ``VmHWM``), else the process's lifetime peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # KiB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _training_arguments(training: TrainingConfig, output_dir: Path, args_cls: type[TrainingArguments] = TrainingArguments,
                        **objective: Any) -> TrainingArguments:
    """The Trainer's arguments for ``training``; ``args_cls`` and ``objective`` let a recipe on a TRL
    trainer (``mmtune align``) add its loss settings to the same optimisation settings."""
    return args_cls(
        output_dir=str(output_dir),
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        learning_rate=training.lr,
        lr_scheduler_type=training.lr_scheduler,
        warmup_steps=training.warmup_ratio,  # a float in [0, 1) is a share of the total steps
        weight_decay=training.weight_decay,
        gradient_accumulation_steps=training.grad_accum,
        bf16=_use_bf16(training.bf16),
        activation_checkpointing=training.gradient_checkpointing,
        seed=training.seed,
        data_seed=training.seed,
        save_strategy="steps" if training.save_steps else "no",
        save_steps=training.save_steps or 1,
        logging_steps=training.logging_steps,
        remove_unused_columns=False,  # the collator needs whole Samples, not dataset columns
        report_to=training.report_to,
        run_name=training.run_name or output_dir.name,
        # Without it, a CPU-only torchrun/accelerate launch trains N independent copies, not DDP.
        use_cpu=not _has_accelerator(),
        dataloader_pin_memory=torch.cuda.is_available(),
        dataloader_num_workers=training.dataloader_workers,
        disable_tqdm=False,
        # Frozen groups (the vision tower under most strategies) get no gradients; DDP must not wait.
        ddp_find_unused_parameters=True,
        **objective,
    )


def checked_samples(samples: Sequence[Sample], processor: Any, max_length: int | None, skip_invalid: bool,
                    max_pixels: int = DEFAULT_MAX_PIXELS, collator: SFTCollator | None = None) -> list[Sample]:
    """The samples to train on, validated before step 0 so bad records fail fast, all named at once;
    their encodings are kept in ``collator``'s cache (``training_collator``) for training to reuse."""
    report = validate_samples(samples, processor=processor, max_length=max_length, max_pixels=max_pixels,
                              collator=collator)
    if not report.ok:
        if not skip_invalid:
            report.raise_if_invalid()
        logger.warning("skipping %d invalid records:\n%s", len(report.invalid_ids), report.table())
    return report.valid_samples


def training_collator(processor: Any, max_length: int | None) -> SFTCollator:
    """The collator ``train_sft`` trains with: it keeps each sample's encoding (validation's included)."""
    return SFTCollator(processor, max_length=max_length, cache_bytes=COLLATE_CACHE_BYTES)


def _approx_lengths(samples: Sequence[Sample]) -> list[int]:
    """Cheap per-sample lengths for length grouping: characters of text + a constant per image.

    Exact token counts would render and tokenize every sample up front; grouping only needs order.
    """
    return [sum(len(t) for role in ("system", "user", "assistant") for t in s.text_of(role)) + 256 * len(s.images)
            for s in samples]


def train_sft(
    model: nn.Module,
    processor: Any,
    samples: Sequence[Sample],
    *,
    strategy: str | ResolvedStrategy,
    output_dir: str | Path,
    training: TrainingConfig,
    resume: bool = False,
    eval_samples: Sequence[Sample] | None = None,
    skip_invalid: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_pickle: bool = False,
    methods: Sequence[str | Method] = (),
    seen_samples: Sequence[Sample] = (),
    logging_dir: str | Path | None = None,
    data_sources: Sequence[tuple[str, int]] = (),
    validated: bool = False,
    collator: SFTCollator | None = None,
) -> SFTResult:
    """Tune ``model`` on ``samples`` with ``strategy``; checkpoints in ``output_dir``, result in ``output_dir/final``.

    ``resume`` continues from the newest ``output_dir/checkpoint-*`` with the same data order,
    scheduler and RNG state, so the loss curve equals an uninterrupted run's. Its pickle files
    (optimizer, scheduler, RNG state) may hold only tensors and plain data unless ``allow_pickle``.

    ``methods`` are anti-forgetting methods of the data and loss phases (``mmtune methods``):
    replay mixes ``seen_samples`` into the tuning set, EWC estimates its Fisher on them.

    Losses go to ``training.report_to`` (TensorBoard's files in ``logging_dir``, default
    ``output_dir/runs``); ``data_sources`` (source, samples drawn) go to ``final/README.md``, the model card.

    ``validated``: the caller already passed ``samples`` through ``checked_samples`` with this processor
    and ``training.max_length`` (the bench does, once per target for all its rows), so they are not
    encoded again; samples a data method changed are always checked. ``collator`` (from
    ``training_collator`` with this processor and ``training.max_length``) may already hold their
    encodings: the bench validates a target's samples once with one and trains every row with it.
    """
    output_dir = Path(output_dir)
    strategy = resolve(strategy)  # parsed once: applied, saved and recorded as this
    methods = train_time(resolve_methods([m.spec if isinstance(m, Method) else m for m in methods]))
    if seen_samples and any(m.entry.needs_seen_data and m.phase == "loss" for m in methods):
        # EWC / MAS read seen data directly: checked before step 0 like the training data (replay's
        # samples are checked as part of the training set)
        seen_samples = checked_samples(seen_samples, processor, training.max_length, skip_invalid, max_pixels)
    for method in methods:
        if method.entry.needs_seen_data and not seen_samples:
            raise ValueError(f"method {method.label}: needs seen-task samples (seen_samples / seen_data)")
        if method.phase == "data":
            samples = method.build().apply(samples, seen_samples, training.seed)
            validated = False
    set_seed(training.seed)  # new modules (LoRA, adapters) are initialised under the run's seed
    collator = collator or training_collator(processor, training.max_length)
    train_samples = (list(samples) if validated
                     else checked_samples(samples, processor, training.max_length, skip_invalid, max_pixels, collator))
    if not train_samples:
        raise ValueError("no training samples left after validation; check the data sources")
    groups = resolve_groups(model)
    model, summary = apply_strategy(model, strategy, groups)
    logger.info("%s", summary.table())
    if training.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # checkpointed blocks need a grad path when embeddings are frozen

    checkpoint = _resume_checkpoint(output_dir) if resume else None
    loss_log = output_dir / LOSS_LOG
    loss_terms = [m.build() for m in methods if m.phase == "loss"]

    trainer = SFTTrainer(
        model=model,
        args=_training_arguments(training, output_dir),
        data_collator=collator,
        train_dataset=SampleDataset(train_samples),
        eval_dataset=SampleDataset(eval_samples) if eval_samples else None,
        param_groups=optimizer_param_groups(model, groups, training.lr, training.group_lr,
                                            weight_decay=training.weight_decay),
        loss_terms=loss_terms,
        lengths=_approx_lengths(train_samples) if training.group_by_length else None,
        logits_at_labels=training.logits_at_labels,
    )
    if loss_terms:
        context = LossContext(trainer.model, _batches(seen_samples, collator, training.batch_size, trainer.args.device))
        for term in loss_terms:
            term.setup(context)
    step_losses = StepLossLog(trainer, loss_log)
    trainer.add_callback(step_losses)
    trainer.add_callback(DivergenceGuard(output_dir, training.divergence_factor, step_losses, trainer))
    train_seconds = run_training(trainer, checkpoint, allow_pickle, Path(logging_dir) if logging_dir else None,
                                 training.cpu_threads)
    eval_loss = trainer.evaluate()["eval_loss"] if eval_samples else None

    step = trainer.state.global_step
    losses = [r["loss"] for r in read_jsonl(loss_log) if r["step"] <= step] if trainer.is_world_process_zero() else []
    result = SFTResult(
        model=trainer.model,
        summary=summary,
        losses=losses,
        output_dir=output_dir,
        train_seconds=train_seconds,
        peak_memory_mb=_peak_memory_mb(),
        eval_loss=eval_loss,
    )
    if trainer.is_world_process_zero():
        meta = {
            "recipe": "sft",
            "training": dataclasses.asdict(training),
            "methods": [m.label for m in methods],
            "num_samples": len(train_samples),
            **({"data": [list(d) for d in data_sources]} if data_sources else {}),
            "num_skipped": len(samples) - len(train_samples),
            "steps": step,
            "world_size": trainer.args.world_size,
            "losses": losses,
            "eval_loss": eval_loss,
            "train_seconds": train_seconds,
            "peak_memory_mb": result.peak_memory_mb,
            "summary": summary.to_dict(),
        }
        _save_final(trainer.model, processor, output_dir, strategy, meta)
    trainer.accelerator.wait_for_everyone()
    return result



def run_training(trainer: Any, checkpoint: Path | None, allow_pickle: bool, logging_dir: Path | None = None,
                 threads: int | str | None = AUTO_THREADS) -> float:
    """Train, from ``checkpoint`` when resuming, and return the seconds it took (peak memory counted
    from here). A checkpoint's optimizer and RNG state are pickles: loaded only when they hold plain
    tensors, or under ``allow_pickle``. TensorBoard's event files go to ``logging_dir`` (default
    ``output_dir/runs``). On a CPU, torch runs ``threads`` threads meanwhile (``training.cpu_threads``)."""
    route_logs(trainer.callback_handler.callbacks, logging_dir or Path(trainer.args.output_dir) / LOGS_DIR)
    _reset_peak_memory()
    start = time.perf_counter()
    # training_args.bin is written for the user, never read back by the Trainer.
    state_files = [f for f in pickle_files(checkpoint) if f.name != TRAINING_ARGS_NAME] if checkpoint else []
    on_cpu = trainer.args.device.type == "cpu"
    with trusted_pickles(state_files, allow_pickle), cpu_threads(threads, on_cpu, log=logger.warning):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return time.perf_counter() - start

def train_time(methods: list[Method]) -> list[Method]:
    """The methods a training run applies itself; posterior ones act on finished runs."""
    posterior = [m.label for m in methods if m.phase == "posterior"]
    if posterior:
        raise ValueError(f"{', '.join(posterior)} acts on finished runs, not during training: use it in a bench "
                         "row (e.g. full+wise_ft(alpha=0.5)) or on the saved weights (mmtune.methods.weights)")
    return methods


def _batches(samples: Sequence[Sample], collator: Any, batch_size: int, device: Any):
    """``() -> iterator`` over collated batches of ``samples`` on ``device``, in order."""
    def batches():
        for start in range(0, len(samples), batch_size):
            batch = collator(list(samples[start:start + batch_size]))
            yield {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batches


def _resume_checkpoint(output_dir: Path) -> Path | None:
    """The last complete checkpoint in ``output_dir``, warning about each newer incomplete one skipped."""
    checkpoint, skipped = last_complete_checkpoint(output_dir)
    for path, problem in skipped:
        logger.warning("--resume: skipping %s, it is incomplete (%s)", path, problem)
    if checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s; starting from step 0", output_dir)
    else:
        logger.info("--resume: continuing from %s", checkpoint)
    return checkpoint


def _save_final(model: nn.Module, processor: Any, output_dir: Path, spec: ResolvedStrategy,
                meta: dict[str, Any]) -> None:
    """``save_tuned`` into ``.partial/final``, renamed to ``final`` once whole: a kill never leaves half a model."""
    staged = output_dir / STAGING_DIR / FINAL_DIR
    shutil.rmtree(staged, ignore_errors=True)
    try:
        save_tuned(model, processor, staged, spec, meta)
        write_run_card(staged, read_mmtune_record(staged) or {}, name=output_dir.resolve().name,
                       library_name="peft" if (staged / "adapter_config.json").is_file() else "transformers")
        publish_dir(staged, output_dir / FINAL_DIR)
    except OSError as e:
        shutil.rmtree(staged, ignore_errors=True)
        raise OSError(e.errno, f"writing {output_dir / FINAL_DIR} failed ({e.strerror or e}); the checkpoints are "
                               "kept: fix that (e.g. free disk space) and rerun with --resume") from e


def write_run_card(model_dir: Path, record: dict[str, Any], *, name: str, library_name: str,
                   extra: Sequence[tuple[str, Any]] = ()) -> Path:
    """The model card of a tuned model from its ``mmtune.json`` record: base, strategy, data, settings
    (scores already in ``model_dir``'s card are kept; new ones are added when measured)."""
    meta = record.get("meta") or {}
    size = meta.get("num_samples", meta.get("num_records"))
    training = {k: v for k, v in (meta.get("training") or {}).items() if k not in TRACKING_FIELDS}
    rows = [(k, meta[k]) for k in ("methods", "objective", "steps") if meta.get(k)]
    if meta.get("losses"):
        rows.append(("final loss", round(meta["losses"][-1], 4)))
    data = [tuple(d) for d in meta.get("data") or []] or ([("training records", size)] if size else [])
    return write_card(model_dir, name=name, base_model=record.get("base_model"), strategy=record.get("strategy"),
                      recipe=meta.get("recipe", "tuning"), library_name=library_name, data=data, training=training,
                      extra=[*rows, *extra])


def run_sft(config: SFTConfig, *, resume: bool = False, allow_pickle: bool = False) -> SFTResult:
    """Load the base model and the mixed data named by ``config``, then ``train_sft``."""
    loaded = load_model(config.model, allow_pickle=allow_pickle, quantization=config.model_quantization)
    samples = mix_sources(load_sources(config.data, seed=config.training.seed), seed=config.training.seed)
    output_dir = Path(config.output_dir)
    if _is_main_process():
        atomic_write_json(output_dir / "sft_config.json", to_dict(config))
    data = [(source.path, stats.drawn) for source, stats in zip(config.data, samples.stats)]
    return train_sft(
        loaded.model, loaded.processor, samples, data_sources=data,
        strategy=config.strategy, output_dir=output_dir, training=config.training,
        resume=resume, skip_invalid=config.validation.skip_invalid, max_pixels=config.validation.max_pixels,
        allow_pickle=allow_pickle, methods=config.methods,
        seen_samples=[s for source, _ in load_sources(config.seen_data, seed=config.training.seed) for s in source],
    )


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"
