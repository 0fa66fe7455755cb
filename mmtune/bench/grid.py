"""The bench grid: which targets, seen sets, strategy rows and seeds, with presets (the config)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.bench.rows import Row, parse_row
from mmtune.config import ConfigError, from_dict, load_yaml, merge, parse_overrides
from mmtune.recipes.sft import TrainingConfig


@dataclass
class TaskRef:
    """A target or seen set: the eval task that scores it and where its training records come from."""

    name: str = field(metadata={"help": "label in run ids and reports"})
    task: str = field(default="", metadata={"help": "registered eval task (default: name)"})
    task_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "kwargs of get_task, e.g. root"})
    train: str = field(default="", metadata={
        "help": "training records (LLaVA JSON, messages JSONL, HF dataset dir) or world:<task> for a world task's "
                "train split; needed to tune on a target or replay a seen set"})
    root: str = field(default="", metadata={"help": "folder the training records' image paths are relative to"})
    metric: str = field(default="", metadata={"help": "score key to use (default: the task's headline metric)"})
    metric_range: float = field(default=0.0, metadata={
        "help": "the metric's full range, which puts its changes on E and F's common scale (default: 1000 for "
                "CIDEr-D, 100 for every other mmtune score); set it for a score such as MME's total (2800)"})
    n_train: int = field(default=0, metadata={
        "help": "training samples drawn for this task (default 0: the bench's n_train); a target that needs more "
                "data to be learned gets its own"})
    max_steps: int = field(default=0, metadata={
        "help": "optimizer steps when tuning on this target (default 0: the bench's training.max_steps); a target "
                "that learns slowly gets its own budget, the same for every row"})

    def __post_init__(self) -> None:
        if self.metric_range < 0:
            raise ConfigError(f"bench task {self.name!r}: metric_range must be > 0 (or 0 for the metric's default)")
        if self.n_train < 0 or self.max_steps < 0:
            raise ConfigError(f"bench task {self.name!r}: n_train and max_steps must be > 0 (or 0 for the bench's)")

    @property
    def eval_task(self) -> str:
        return self.task or self.name


@dataclass
class BenchConfig:
    """One bench: base model, targets, seen sets, strategy rows, seeds, data sizes, training."""

    preset: str = "quick"
    model: str = ""  # checkpoint folder; empty = the built-in world base, pre-trained if not cached
    world_preset: str = "quick"  # ensure_base_model preset when model is empty
    world_projector: str = "mlp"  # the built-in base's interface: LLaVA's MLP, or "resampler" (learnable queries)
    targets: list[TaskRef | str] = field(default_factory=list)
    seen: list[TaskRef | str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    n_train: int = 64
    n_test: int = 32
    lr: dict[str, float] = field(default_factory=dict)  # by strategy name; "default" for the rest
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval_batch_size: int = 16
    bootstrap_resamples: int = 1000  # resamples of the test samples behind every 95% interval
    out_dir: str = "bench_out"
    # runs at once in worker processes: 1 (serial), N, or auto (one per GPU; on a CPU one per physical core
    # for the built-in world base, serial for a checkpoint folder, of which each worker would hold a copy)
    workers: int | str = 1
    # where the runs go: process (the workers are processes of this machine) or dask (a Dask cluster: a local
    # one of `workers` processes, or the one at `scheduler`, e.g. tcp://host:8786, whose workers may be on
    # other machines; see mmtune.bench.parallel)
    executor: str = "process"
    scheduler: str = ""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"bench preset {self.preset!r} is unknown; use one of {', '.join(PRESETS)}")
        self.targets = [_task_ref(t, "targets") for t in self.targets]
        self.seen = [_task_ref(t, "seen") for t in self.seen]
        for what in ("targets", "seen", "strategies", "seeds"):
            if not getattr(self, what):
                raise ConfigError(f"bench config: {what} is empty; list at least one")
        names = [t.name for t in [*self.targets, *self.seen]]
        if len(set(names)) != len(names):
            raise ConfigError(f"bench config: task names repeat in targets/seen ({', '.join(names)})")
        if self.n_train <= 0 or self.n_test <= 0:
            raise ConfigError("bench config: n_train and n_test must be > 0")
        if self.bootstrap_resamples < 100:
            raise ConfigError("bench config: bootstrap_resamples must be >= 100 for a 95% interval (1000 is usual)")
        from mmtune.bench.parallel import check_executor, check_workers

        check_workers(self.workers)
        check_executor(self.executor, self.scheduler)
        from mmtune.world.model import PROJECTORS

        if self.world_projector not in PROJECTORS:
            raise ConfigError(f"bench config: world_projector {self.world_projector!r} is unknown; "
                              f"use one of {', '.join(PROJECTORS)}")
        self.rows()  # parse early so a bad row fails before the base model is built

    def rows(self) -> list[Row]:
        """Parsed rows; posterior rows need their source row in the grid, and merging two targets."""
        from mmtune.strategies.registry import resolve

        rows = [parse_row(s) for s in self.strategies]
        for r in rows:
            resolve(r.strategy)  # unknown strategies or arguments fail now, not after the base is evaluated
        labels = {r.label for r in rows}
        for r in rows:
            if r.source is not None and r.source not in labels:
                raise ConfigError(f"bench row {r.label!r} reuses the runs of {r.source!r}: add {r.source!r} to strategies")
            if r.posterior == "merge" and len(self.targets) < 2:
                raise ConfigError(f"bench row {r.label!r} merges targets' task vectors: list >= 2 targets")
        if len(labels) != len(rows):
            raise ConfigError("bench config: a strategy row is listed twice")
        return rows

    def lr_for(self, row: Row) -> float:
        return float(self.lr.get(row.strategy_name, self.lr.get("default", self.training.lr)))

    def training_for(self, row: Row, seed: int, target: TaskRef | None = None) -> TrainingConfig:
        """The row's optimisation settings: its lr and seed, the target's step budget if it has one;
        checkpoints off (runs are short)."""
        steps = target.max_steps if target is not None and target.max_steps else self.training.max_steps
        return dataclasses.replace(self.training, lr=self.lr_for(row), seed=seed, save_steps=0, max_steps=steps)

    def n_train_for(self, ref: TaskRef) -> int:
        """Training samples drawn for ``ref``: its own n_train, else the bench's."""
        return ref.n_train or self.n_train


WORLD_SOURCE = "world:"


def _world(name: str, **settings: Any) -> dict[str, Any]:
    """A world task's TaskRef fields: scored by the eval task ``world_<name>``, trained on its train split."""
    return {"name": name, "task": f"world_{name}", "train": f"{WORLD_SOURCE}{name}", **settings}


def world_ref(name: str) -> TaskRef:
    """A synthetic-world task: scored by the eval task ``world_<name>``, trained on its train split."""
    return TaskRef(**_world(name))


def _task_ref(value: TaskRef | str | dict, where: str) -> TaskRef:
    """A mapping is a TaskRef; a bare name is a world task if one has that name, else an eval task."""
    if isinstance(value, TaskRef):
        return value
    if isinstance(value, str):
        from mmtune.world.tasks import WORLD_TASKS

        return world_ref(value) if value in WORLD_TASKS else TaskRef(name=value)
    if isinstance(value, dict):
        return from_dict(TaskRef, value, where)
    raise ConfigError(f"bench config: an entry of {where} must be a task name or a mapping, got {value!r}")


# Selective rows move pretrained weights directly, so they get smaller rates than the new modules
# of LoRA / adapters / prompts (as in the paper's setting: LoRA 2e-4, full and projector 2e-5).
_LR = {"full": 3e-4, "top": 5e-4, "last": 1e-3, "projector": 1e-3, "lora": 2e-3, "dora": 2e-3,
       "adapter": 2e-3, "prompt": 1e-2, "default": 1e-3}
# Every strategy paradigm plus the anti-forgetting methods, each applied where forgetting is largest.
# EWC's weight makes its mean pull equal L2-SP's at weight 1: 2 / mean Fisher diagonal of the quick
# base under full tuning on the seen sets (4.9e-6; see the README), not tuned on any test set.
_ROWS = ["full", "top(k=2)", "last", "projector", "lora", "dora", "adapter", "prompt",
         "full+replay(fraction=0.2)", "full+l2sp(weight=1.0)", "full+ewc(weight=400000)", "full+lwf(weight=1.0)",
         "full+wise_ft(alpha=0.5)"]


# MME's headline is acc + acc+ summed over categories; F averages deltas, so use its 0-100 accuracy.
_MME = _world("mme", metric="accuracy")
# Presets are config layers under the user's YAML and --set overrides.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "world_preset": "quick",
        # Two targets on which the rows separate (E spread >= 20 points): iconqa (counting, in the seen
        # sets' domain) within this budget, refcoco (grounding) at 400 steps (LoRA +21 / +29, projector,
        # prompt and adapter 0 on the quick base). rsvqa, in the shifted aerial domain, needs the full
        # preset's budget (600 steps on 4000 samples) to separate; sciqa and itm ask where objects are,
        # which the base does not read.
        "targets": ["iconqa", _world("refcoco", max_steps=400)],
        "seen": ["vqa", "gqa", "ocr", _MME, "pope"],
        "strategies": _ROWS,
        "seeds": [0],
        "workers": "auto",  # one single-threaded process per core: the same runs as serial, sooner
        "n_train": 1000,
        "n_test": 100,
        "lr": _LR,
        # The LM head at every position, as the published tables were measured (the world model's head is
        # small, so computing it only at label positions saves nothing measurable here).
        "training": {"max_steps": 160, "batch_size": 16, "warmup_ratio": 0.03, "logging_steps": 20,
                     "logits_at_labels": False},
    },
    # Sized for the 2-core CPU machine (<= 2 hours per architecture once its base is pre-trained), from
    # measured rates (one thread per worker, two workers: ~8 steps/s at batch 16; ~11 s to score 7 sets of
    # 300): 5 targets x 3 seeds x 12 trained rows, each scored on its target and 6 seen sets, WiSE-FT and
    # three merges scoring only: about 1.5 hours. Each target gets the budget at which some row reaches
    # E >= +20 (measured on the quick base, seed 0): iconqa at 200 steps, refcoco at 400 (LoRA +29),
    # rsvqa at 600 steps on 4000 samples (full +29.7, LoRA +19.3; with 1000 samples full memorises them).
    # sciqa and itm ask where objects are, which the base does not read: the default budget shows it.
    # 300 samples per set: two rows' E 10 points apart differ beyond the 95% level even for independent
    # coin-flip outcomes (standard error of the difference sqrt(2 x 0.25 / 300) = 4.1 points, x 1.96 = 8.0).
    # The base is the quick pre-training (the one the README measures), with either interface:
    # --projector resampler.
    "full": {
        "world_preset": "quick",
        "targets": ["sciqa", "iconqa", _world("refcoco", max_steps=400), "itm",
                    _world("rsvqa", n_train=4000, max_steps=600)],
        "seen": ["vqa", "gqa", "ocr", _MME, "pope", "caption"],
        "strategies": [*_ROWS, "full+merge(method=task_arithmetic, scale=0.5)",
                       "full+merge(method=ties, density=0.5)", "full+merge(method=dare, density=0.5)"],
        "seeds": [0, 1, 2],
        "workers": "auto",
        "n_train": 1000,
        "n_test": 300,
        "lr": _LR,
        "training": {"max_steps": 200, "batch_size": 16, "warmup_ratio": 0.03, "logging_steps": 25,
                     "logits_at_labels": False},
    },
}


def load_bench_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      preset: str | None = None) -> BenchConfig:
    """Preset (from ``preset``, else the YAML/overrides, else quick) < YAML file < ``--set`` overrides."""
    data = merge(load_yaml(path) if path else {}, parse_overrides(overrides or []))
    name = preset or data.get("preset", "quick")
    if name not in PRESETS:
        raise ConfigError(f"bench preset {name!r} is unknown; use one of {', '.join(PRESETS)}")
    layer = dict(PRESETS[name])
    if "lr" in data:
        layer.pop("lr")  # a user's rate table replaces the preset's, so its "default" covers every other row
    return from_dict(BenchConfig, merge(layer, {**data, "preset": name}))
