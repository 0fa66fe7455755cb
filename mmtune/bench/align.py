"""The alignment bench (``mmtune bench --preset align``): which preference objective cuts hallucination
most for the least alignment tax, with LoRA and with full tuning.

On a base that hallucinates (the ``quick-cooc`` world base: noisy captions name the usual companion of
a present object), every row trains from the base on data built once per bench (seeded):
- preference pairs by the injected construction on the world's exact scenes (``world.prefs``):
  descriptions with one false fact, and existence answers (POPE-style probes) with the answer flipped;
- ``sft`` tunes on the chosen responses (the baseline), ``dpo`` / ``mdpo`` on the pairs (mDPO's
  corrupted image from ``data.corrupt``, made by its collator), ``kto`` on the same pairs unpaired,
  ``grpo`` on the existence prompts with verifiable yes/no rewards (``recipes.align.rewards``; a
  description has no per-answer reward there, CHAIR is scored over a set).
E = hallucination reduction: the mean improvement on the hallucination sets (CHAIR_i drop on
world_describe, POPE F1 gains overall and on the adversarial split), each on the common 0-100 scale;
F = the change on the seen sets (the alignment tax), as in the tuning bench; O = E + F. Each finished
run is one JSON under ``out_dir/runs`` (resumable); the report is ``align_report.write_align_report``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.bench.grid import BenchConfig, TaskRef
from mmtune.bench.report import RUNS_DIR
from mmtune.bench.rows import slug
from mmtune.bench.scores import higher_is_better, scaled_deltas, seen_deltas
from mmtune.config import ConfigError, from_dict, load_yaml, merge, parse_overrides
from mmtune.data.preferences import Preference
from mmtune.data.sample import Sample
from mmtune.files import atomic_write_json, read_jsonl
from mmtune.recipes.sft import TRACKING_FIELDS, TrainingConfig, training_settings
from mmtune.strategies.spec import format_spec, parse_spec

TARGET = "hallucination"  # the align bench's one target: E is scored on the hallucination sets together
PREFS_DIR = "prefs"
# a row's first part: its row arguments set ObjectiveConfig (dpo, kto, mdpo) or GRPOSettings (grpo); sft takes none
OBJECTIVES = ("sft", "dpo", "kto", "mdpo", "grpo")


@dataclass(frozen=True)
class AlignRow:
    """One row: an objective with its arguments, then the tuning strategy, e.g. ``dpo(loss_type=ipo)+lora``."""

    label: str
    objective: str
    arguments: dict[str, Any]
    strategy: str

    @property
    def strategy_name(self) -> str:
        return parse_spec(self.strategy)[0].name


def parse_align_row(text: str) -> AlignRow:
    """``objective(args)+strategy``; errors name the row and what to write."""
    parts = parse_spec(text)
    if parts[0].name not in OBJECTIVES or len(parts) < 2:
        raise ConfigError(f"align bench row {text!r}: write an objective ({', '.join(OBJECTIVES)}) then a "
                          "strategy, e.g. dpo(loss_type=ipo)+lora or sft+full")
    row = AlignRow(format_spec(parts), parts[0].name, dict(parts[0].kwargs), format_spec(parts[1:]))
    if row.objective == "sft" and row.arguments:
        raise ConfigError(f"align bench row {text!r}: sft takes no arguments (set training: instead)")
    return row


@dataclass
class AlignBenchConfig:
    """One alignment bench: base, world, hallucination and seen sets, rows, data sizes, training."""

    preset: str = "align"
    model: str = ""  # checkpoint folder; empty = the built-in world base of world_preset
    world_preset: str = "quick-cooc"
    world_projector: str = "mlp"
    world: str = "cooc"  # world variant the preference pairs and GRPO prompts are drawn from
    hallucination: list[TaskRef | str] = field(default_factory=list)  # E's sets
    seen: list[TaskRef | str] = field(default_factory=list)  # F's sets
    rows: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    data_seed: int = 0  # the preference data and prompts, the same for every row and seed
    n_describe_pairs: int = 64
    n_existence_pairs: int = 64
    injected: list[str] = field(default_factory=lambda: ["object", "attribute", "count", "position"])
    n_grpo_prompts: int = 64
    n_test: int = 200
    lr: dict[str, float] = field(default_factory=dict)  # by strategy name; "default" for the rest
    training: TrainingConfig = field(default_factory=TrainingConfig)
    grpo: dict[str, Any] = field(default_factory=dict)  # GRPOSettings keys besides strategy, lr, seed
    eval_batch_size: int = 50
    bootstrap_resamples: int = 1000
    out_dir: str = "bench_align_out"

    def __post_init__(self) -> None:
        if not self.rows:
            raise ConfigError("align bench config: rows is empty; list at least one, e.g. dpo+lora")
        parsed = self.parsed_rows()
        if len({r.label for r in parsed}) != len(parsed):
            raise ConfigError("align bench config: a row is listed twice")
        for r in parsed:
            self.objective_settings(r, 0)  # bad objective arguments fail before the base is evaluated
        from mmtune.world.prefs import EDITS
        from mmtune.world.scenes import world_variant_named

        try:
            world_variant_named(self.world)
        except ValueError as e:
            raise ConfigError(f"align bench config: world: {e}") from None

        if not self.injected or (unknown := sorted(set(self.injected) - set(EDITS))):
            raise ConfigError(f"align bench config: injected {unknown or self.injected} must be some of {', '.join(EDITS)}")
        if min(self.n_describe_pairs, self.n_existence_pairs, self.n_grpo_prompts) < 0:
            raise ConfigError("align bench config: n_describe_pairs, n_existence_pairs and n_grpo_prompts must be >= 0")
        self.bench_config()  # sets, sizes and the base's settings checked as the tuning bench checks them

    def parsed_rows(self) -> list[AlignRow]:
        return [parse_align_row(r) for r in self.rows]

    def bench_config(self) -> BenchConfig:
        """The tuning bench's config over the same base and sets, whose ``Bench`` evaluates for this one."""
        strategies = sorted({r.strategy for r in self.parsed_rows()})
        config = BenchConfig(model=self.model, world_preset=self.world_preset, world_projector=self.world_projector,
                             targets=list(self.hallucination), seen=list(self.seen), strategies=strategies,
                             seeds=list(self.seeds), n_test=self.n_test, eval_batch_size=self.eval_batch_size,
                             bootstrap_resamples=self.bootstrap_resamples, out_dir=self.out_dir)
        for ref in [*config.targets, *config.seen]:
            if ref.eval_task.startswith("world_") and "n" not in ref.task_args:
                # a world set's first n_test samples are the same for any n >= n_test: draw no more
                ref.task_args = {**ref.task_args, "n": self.n_test}
        return config

    def training_for(self, row: AlignRow, seed: int) -> TrainingConfig:
        """The row's optimisation settings: its strategy's lr and the seed; no checkpoints (runs are short)."""
        lr = float(self.lr.get(row.strategy_name, self.lr.get("default", self.training.lr)))
        return dataclasses.replace(self.training, lr=lr, seed=seed, save_steps=0)

    def objective_settings(self, row: AlignRow, seed: int) -> Any:
        """ObjectiveConfig of a preference row, GRPOSettings of a grpo row, None for sft."""
        from mmtune.recipes.align.config import ObjectiveConfig
        from mmtune.recipes.align.grpo import GRPOSettings

        try:
            if row.objective == "grpo":
                training = self.training_for(row, seed)
                base = {"max_steps": training.max_steps, "lr_scheduler": training.lr_scheduler,
                        "warmup_ratio": training.warmup_ratio, "bf16": training.bf16}
                return from_dict(GRPOSettings, {**base, **self.grpo, **row.arguments, "strategy": row.strategy,
                                                "lr": training.lr, "seed": seed, "save_steps": 0}, "grpo")
            if row.objective == "sft":
                return None
            return from_dict(ObjectiveConfig, {"method": row.objective, **row.arguments}, row.label)
        except ValueError as e:
            raise ConfigError(f"align bench row {row.label!r}: {e}") from None


def _sets(sets: list[dict[str, Any]], world: str) -> list[dict[str, Any]]:
    return [{**s, "task_args": {**s.get("task_args", {}), "variant": world}} for s in sets]


_MME = {"name": "mme", "task": "world_mme", "metric": "accuracy"}  # its 0-100 accuracy, as in the tuning bench
# Sized for the 2-core CPU machine (<= 15 minutes with the quick-cooc base cached), from row subsets measured
# on that base at load ~4: 40 steps at batch 8 (128 pairs, 2.5 epochs) train in 5-7 s (SFT), 12-17 s (DPO, IPO,
# KTO, GRPO: 2 prompts x 4 answers a step), 27 s (mDPO: three forward passes); the 7 sets of 200 test samples
# score in ~15 s per model: 12 rows ~6-7 minutes after ~40 s for the base. 200 samples per set: a CHAIR_i or
# F1 change of ~4-6 points is beyond the 95% level. Learning rates are per strategy, the same for every
# objective; full tuning at 1e-4 erased OCR (-56 points) in a trial run, so it gets 2e-5 (LoRA's / 50; TRL's
# DPOConfig default, meant for full tuning of large models, is 1e-6).
PRESETS: dict[str, dict[str, Any]] = {
    "align": {
        "world_preset": "quick-cooc",
        "world": "cooc",
        # Descriptions are scored on the default world's scenes, where objects are drawn independently, so a
        # lone object's usual companion is often absent (the quick-cooc base: CHAIR_i 14.0 there, 4.1 on the
        # variant's own scenes, whose pairs are complete 75% of the time); POPE probes the variant's scenes,
        # its adversarial split asking about an absent companion.
        "hallucination": [{"name": "describe", "task": "world_describe"},
                          *_sets([{"name": "pope", "task": "world_pope"},
                                  {"name": "pope_adversarial", "task": "world_pope",
                                   "task_args": {"pope_split": "adversarial"}}], "cooc")],
        "seen": ["vqa", "gqa", "ocr", _MME],
        "rows": [f"{objective}+{strategy}" for strategy in ("lora", "full")
                 for objective in ("sft", "dpo(loss_type=sigmoid)", "dpo(loss_type=ipo)", "kto", "mdpo", "grpo")],
        "n_describe_pairs": 64,
        "n_existence_pairs": 64,
        "n_grpo_prompts": 64,
        "n_test": 200,
        "lr": {"full": 2e-5, "lora": 1e-3, "default": 1e-4},
        "training": {"max_steps": 40, "batch_size": 8, "warmup_ratio": 0.1, "logging_steps": 10},
        "grpo": {"num_generations": 4, "batch_size": 8, "max_completion_length": 8, "beta": 0.04,
                 "reward_weights": {"answer": 1.0, "format": 0.5}},
    },
}


def load_align_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AlignBenchConfig:
    """The align preset < YAML file < ``--set`` overrides."""
    data = merge(load_yaml(path) if path else {}, parse_overrides(overrides or []))
    name = data.get("preset", "align")
    if name not in PRESETS:
        raise ConfigError(f"align bench preset {name!r} is unknown; use one of {', '.join(PRESETS)}")
    layer = dict(PRESETS[name])
    if "lr" in data:
        layer.pop("lr")  # a user's rate table replaces the preset's
    return from_dict(AlignBenchConfig, merge(layer, {**data, "preset": name}))


# -- the data, built once per bench -------------------------------------------------------------
def existence_pairs(samples: list[Sample]) -> list[Preference]:
    """Injected pairs on existence probes: chosen = the scene's true yes/no, rejected = the other answer."""
    pairs = []
    for s in samples:
        answer = str(s.meta["answer"]).strip().lower()
        flipped = "no" if answer == "yes" else "yes"
        pairs.append(Preference(
            id=f"{s.id}-injected", messages=s.prompt_messages(), images=list(s.images), chosen=answer,
            rejected=flipped, meta={"construction": {"method": "injected", "source": f"world_{s.meta['task']}",
                                                     "injected": [{"type": "existence", "true": answer,
                                                                   "injected": flipped}]}}))
    return pairs


@dataclass
class AlignData:
    """What every row trains on: the preference pairs and the GRPO prompts (with their references)."""

    pairs: list[Preference]
    prompts: list[Sample]

    def fingerprint(self) -> str:
        blob = json.dumps([[p.id, p.chosen, p.rejected] for p in self.pairs] + [[s.id, s.meta] for s in self.prompts],
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_data(config: AlignBenchConfig) -> AlignData:
    """Describe pairs with one injected hallucination, existence pairs and GRPO's existence prompts, all
    from the train split of the config's world (exact references), seeded by ``data_seed``."""
    from mmtune.world.prefs import injected_pairs
    from mmtune.world.scenes import world_variant
    from mmtune.world.tasks import get_world_task

    with world_variant(config.world, noisy=False):
        describe = injected_pairs("describe", split="train", n=config.n_describe_pairs, seed=config.data_seed,
                                  kinds=config.injected) if config.n_describe_pairs else []
        n_probes = max(config.n_existence_pairs, config.n_grpo_prompts)
        probes = get_world_task("pope").samples("train", n_probes, seed=config.data_seed) if n_probes else []
    return AlignData(describe + existence_pairs(probes[: config.n_existence_pairs]), probes[: config.n_grpo_prompts])


# -- scores ----------------------------------------------------------------------------------------
def alignment_scores(before: dict[str, float], after: dict[str, float], ranges: dict[str, float],
                     lower_is_better: set[str], hallucination: list[str], seen: list[str]) -> dict[str, Any]:
    """E = mean improvement over the ``hallucination`` sets on the common scale (a lower-is-better metric's
    drop counts positive: CHAIR_i), F = mean change over the ``seen`` sets, O = E + F, and every set's
    raw and scaled change."""

    def part(names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        b, a = {n: before[n] for n in names}, {n: after[n] for n in names}
        return seen_deltas(a, b), scaled_deltas(a, b, {n: ranges[n] for n in names}, lower_is_better)

    h_raw, h_scaled = part(hallucination)
    s_raw, s_scaled = part(seen)
    e = sum(h_scaled.values()) / len(h_scaled)
    f = sum(s_scaled.values()) / len(s_scaled)
    return {"E": e, "F": f, "O": e + f, "hallucination_sets": list(hallucination),
            "hallucination_deltas": h_raw, "hallucination_scaled": h_scaled, "seen_deltas": s_raw,
            "seen_scaled": s_scaled, "scores_before": {n: before[n] for n in [*hallucination, *seen]},
            "scores_after": {n: after[n] for n in [*hallucination, *seen]},
            "ranges": {n: ranges[n] for n in [*hallucination, *seen]}, "lower_is_better": sorted(lower_is_better)}


# -- runs ------------------------------------------------------------------------------------------
def run_id(row: AlignRow, seed: int) -> str:
    return f"{slug(row.label)}__seed{seed}"


def step_curve(output_dir: Path) -> list[dict[str, float]]:
    """Per optimizer step: the loss, and the reward margin and preference accuracy (DPO family, KTO's
    margin) or the mean reward (GRPO), from the run's ``losses.jsonl`` / ``rewards.jsonl``."""
    keys = {"rewards/margins": "margin", "rewards/accuracies": "accuracy", "loss": "loss"}
    steps: dict[int, dict[str, float]] = {}
    for r in read_jsonl(output_dir / "losses.jsonl"):
        steps.setdefault(r["step"], {}).update({new: float(r[old]) for old, new in keys.items() if old in r})
    for r in read_jsonl(output_dir / "rewards.jsonl"):
        steps.setdefault(r["step"], {})["reward"] = float(r["reward"])
    return [{"step": k, **v} for k, v in sorted(steps.items())]


class AlignBench:
    """The align bench in one output folder; a tuning ``Bench`` over the same sets evaluates the base and
    every aligned model (answers cached, per-sample scores kept)."""

    def __init__(self, config: AlignBenchConfig, log: Callable[[str], None] = print) -> None:
        from mmtune.bench.runner import Bench

        self.config, self.log = config, log
        self.bench = Bench(config.bench_config(), log)
        self.out = Path(config.out_dir)
        self.refs = [*self.bench.config.targets, *self.bench.config.seen]
        self._data: AlignData | None = None

    @property
    def data(self) -> AlignData:
        if self._data is None:
            from mmtune.data.preferences import write_preferences

            self._data = build_data(self.config)
            path = self.out / PREFS_DIR / "pairs.jsonl"
            if not path.exists():  # written for the reader; training uses the in-memory (identical) pairs
                write_preferences(path, self._data.pairs, image_dir=self.out / PREFS_DIR / "images")
        return self._data

    def metric(self, ref: TaskRef) -> str:
        return ref.metric or self.bench.task(ref).metric

    def settings(self, row: AlignRow, seed: int) -> dict[str, Any]:
        """Everything a run's result depends on; a finished run with other settings is not reused."""
        objective = self.config.objective_settings(row, seed)
        return {"model": str(self.bench.base_path), "sets": [self.bench.test_fingerprint(r) for r in self.refs],
                "data": self.data.fingerprint(), "row": row.label,
                "training": training_settings(self.config.training_for(row, seed)),
                "objective": _without_tracking(objective)}

    def finished(self, row: AlignRow, seed: int) -> bool:
        path = self.out / RUNS_DIR / f"{run_id(row, seed)}.json"
        if not path.exists():
            return False
        if json.loads(path.read_text(encoding="utf-8")).get("settings") != self.settings(row, seed):
            raise ValueError(f"{path} was run with other settings (model, test sets, data or training); use "
                             "another --out folder or delete that file to rerun it")
        return True

    def train(self, row: AlignRow, seed: int, output_dir: Path):
        """Train ``row`` from the base; returns (SFTResult, processor)."""
        loaded = self.bench.load_base()
        settings = self.config.objective_settings(row, seed)
        training = self.config.training_for(row, seed)
        if row.objective == "sft":
            from mmtune.recipes.sft import train_sft

            chosen = [p.sample("chosen") for p in self.data.pairs]
            result = train_sft(loaded.model, loaded.processor, chosen, strategy=row.strategy,
                               output_dir=output_dir, training=training)
        elif row.objective == "grpo":
            from mmtune.recipes.align.grpo import train_grpo

            result = train_grpo(loaded.model, loaded.processor, self.data.prompts, settings, output_dir)
        else:
            from mmtune.recipes.align.train import train_align

            result = train_align(loaded.model, loaded.processor, self.data.pairs, objective=settings,
                                 strategy=row.strategy, output_dir=output_dir, training=training)
        return result, loaded.processor

    def run_one(self, row: AlignRow, seed: int, base) -> dict[str, Any]:
        """Train, score and record one (row, seed); the weights are dropped once scored."""
        rid = run_id(row, seed)
        work = self.out / "work" / rid
        shutil.rmtree(work, ignore_errors=True)
        result, processor = self.train(row, seed, work)
        after = self.bench.evaluate(result.model, processor, self.refs, rid)
        curve = step_curve(work)
        shutil.rmtree(work, ignore_errors=True)
        return {"run_id": rid, "target": TARGET, "row": row.label, "objective": row.objective,
                "strategy": row.strategy, "seed": seed, **self.scores(base, after), "curve": curve,
                "trainable_params": result.summary.trainable_params, "total_params": result.summary.total_params,
                "train_seconds": result.train_seconds, "peak_memory_mb": result.peak_memory_mb,
                "final_loss": result.losses[-1] if result.losses else None,
                "per_sample": {r.name: after.per_sample.get(r.name) for r in self.refs},
                "settings": self.settings(row, seed)}

    def scores(self, base, after) -> dict[str, Any]:
        """The run's E, F, O and set changes from the base's and the aligned model's scores."""
        lower = {r.name for r in self.refs if not higher_is_better(self.metric(r))}
        return {**alignment_scores(base.scores, after.scores, base.ranges, lower,
                                   [r.name for r in self.bench.config.targets], [r.name for r in self.bench.config.seen]),
                "metrics": {r.name: self.metric(r) for r in self.refs}}

    def run(self) -> dict[str, Path]:
        """Run every unfinished (row, seed) and render the report; returns the report files."""
        from mmtune.bench.align_report import write_align_report
        from mmtune.config import to_dict

        atomic_write_json(self.out / "config.json", {**to_dict(self.config), "bench": "align"})
        base = self.bench.base_scores()
        self.log(f"preference data: {len(self.data.pairs)} pairs, {len(self.data.prompts)} GRPO prompts "
                 f"(world {self.config.world}), in {self.out / PREFS_DIR}")
        plan = [(row, seed) for seed in self.config.seeds for row in self.config.parsed_rows()]
        for i, (row, seed) in enumerate(plan, 1):
            where = f"[{i}/{len(plan)}] {row.label} | seed {seed}"
            if self.finished(row, seed):
                self.log(f"{where}: finished earlier, skipped")
                continue
            start = time.perf_counter()
            record = self.run_one(row, seed, base)
            atomic_write_json(self.out / RUNS_DIR / f"{record['run_id']}.json", record)
            self.log(f"{where}: E {record['E']:+.1f} F {record['F']:+.1f} O {record['O']:+.1f} "
                     f"({time.perf_counter() - start:.0f} s)")
        return write_align_report(self.out, resamples=self.config.bootstrap_resamples)


def run_align_bench(config: AlignBenchConfig, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run (or resume) the alignment bench ``config`` describes; returns the report's paths."""
    return AlignBench(config, log).run()


def wants_align(preset: str | None, config_path: str | None) -> bool:
    """Whether ``mmtune bench`` was asked for the align bench: ``--preset align`` or ``preset: align`` in the YAML."""
    return preset == "align" or (preset is None and bool(config_path)
                                 and load_yaml(config_path).get("preset") == "align")


def run_from_cli(args: Any) -> dict[str, Path]:
    """``mmtune bench --preset align``: the align preset < --config < --set, with --out, --strategies (rows,
    ';'-separated) and --projector; options of the tuning bench only are refused by name."""
    refused = [flag for flag, value in (("--targets", args.targets), ("--workers", args.workers),
                                          ("--executor", args.executor), ("--scheduler", args.scheduler)) if value]
    if refused:
        raise ConfigError(f"mmtune bench --preset align does not take {', '.join(refused)}: its sets are "
                          "hallucination: and seen: (set them with --set or --config) and its runs go one at a time")
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out_dir={args.out}")
    if args.projector:
        overrides.append(f"world_projector={args.projector}")
    config = load_align_config(args.config, overrides)
    if args.strategies:
        # Rows contain commas (``dpo(loss_type=ipo, beta=0.2)+lora``), so the list is split on ';'.
        config = dataclasses.replace(config, rows=[s.strip() for s in args.strategies.split(";") if s.strip()])
    return run_align_bench(config)


def _without_tracking(objective: Any) -> dict[str, Any] | None:
    """An objective's settings but where its run is logged (GRPO's report_to, run_name), so finished runs
    recorded before GRPO had trackers still match."""
    if objective is None:
        return None
    return {k: v for k, v in dataclasses.asdict(objective).items() if k not in TRACKING_FIELDS}
