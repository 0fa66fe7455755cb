"""The bench run loop: evaluate the base once, then tune, evaluate and score every (target, row, seed).

Each finished run is one JSON under ``out_dir/runs``, written atomically, so an interrupted bench
resumes where it stopped. Runs and the base keep every set's per-sample scores, from which the
report draws its bootstrap intervals. Posterior rows (WiSE-FT, merging) reuse finished runs' weights, no
retraining. With ``workers`` > 1 the runs go to worker processes (``mmtune.bench.parallel``) and
give the same scores. The report is re-rendered at the end (and by ``mmtune bench --report``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.bench.grid import WORLD_SOURCE, BenchConfig, TaskRef
from mmtune.bench.report import BASE_FILE, RUNS_DIR, write_report
from mmtune.bench.rows import Row, slug
from mmtune.bench.sample_scores import evaluated_sample_scores
from mmtune.bench.scores import metric_range, run_scores
from mmtune.data.sample import Sample
from mmtune.files import atomic_write_json
from mmtune.model_card import Score, add_scores
from mmtune.tracking import log_scores

WORK_DIR = "work"  # trained weights that posterior rows still need
TRACKING_DIR = "tracking"  # the trackers' local files, a folder per run id (tensorboard --logdir <out>/tracking)


@dataclass
class Scored:
    """One model's scores on some bench tasks: the headline score, its metric's full range (the
    common scale of E and F) and the per-sample scores (None where no form reproduces the score)."""

    scores: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, float] = field(default_factory=dict)
    per_sample: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def run_id(target: str, row: Row, seed: int) -> str:
    return f"{slug(target)}__{slug(row.label)}__seed{seed}"


@dataclass
class PlanItem:
    """One unit of the bench's work: a row at a seed on one target (on every target for a merge)."""

    row: Row
    seed: int
    targets: list[TaskRef]
    run_id: str  # its run's id, or the merged model's
    where: str  # its progress-line prefix: position in the plan, targets, row, seed
    sources: set[tuple[str, int, str]] = field(default_factory=set)  # keys of the items whose weights it reuses

    @property
    def key(self) -> tuple[str, int, str]:
        return self.row.label, self.seed, ",".join(t.name for t in self.targets)


class Bench:
    """One bench in one output folder: its base model, data, cached base scores and finished runs."""

    def __init__(self, config: BenchConfig, log: Callable[[str], None] = print, base_path: Path | None = None) -> None:
        """``base_path``: the base checkpoint when already resolved (a worker gets its parent's)."""
        self.config, self.log = config, log
        self.out = Path(config.out_dir)
        self.rows = config.rows()
        self.by_label = {r.label: r for r in self.rows}
        self.base_path = base_path or self._base_model_path()
        self._tasks: dict[str, Any] = {}
        self._train: dict[str, list[Sample]] = {}
        self._checked: dict[str, tuple[list[Sample], Any]] = {}  # validated training samples, their collator

    # -- inputs -------------------------------------------------------------------------------
    def _base_model_path(self) -> Path:
        if self.config.model:
            path = Path(self.config.model)
            if not path.is_dir():
                raise FileNotFoundError(f"bench config model={path}: no such checkpoint folder")
            return path
        from mmtune.recipes.pretrain import ensure_base_model

        self.log(f"base model: world preset {self.config.world_preset!r}, projector {self.config.world_projector!r} "
                 "(pre-trained once, then cached)")
        return ensure_base_model(preset=self.config.world_preset, projector=self.config.world_projector)

    def task(self, ref: TaskRef):
        """The eval task scoring ``ref``, built once."""
        if ref.name not in self._tasks:
            from mmtune.eval.task import get_task
            from mmtune.world.tasks import WORLD_TASKS

            args = dict(ref.task_args)
            if ref.eval_task.removeprefix("world_") in WORLD_TASKS and ref.eval_task.startswith("world_"):
                # a world set is drawn to size (its task's default is 200); its first n samples are the
                # same for any size >= n, so a smaller n_test scores the same samples as before
                args.setdefault("n", self.config.n_test)
            task = get_task(ref.eval_task, **args)
            if len(task.samples) < self.config.n_test:
                self.log(f"{ref.name}: {len(task.samples)} test samples, fewer than n_test={self.config.n_test}; "
                         "all of them are scored")
            self._tasks[ref.name] = task
        return self._tasks[ref.name]

    def test_fingerprint(self, ref: TaskRef) -> dict[str, Any]:
        """``ref`` plus a hash of the test samples it is scored on: scores of other samples are never reused."""
        blob = json.dumps([[s.id, s.meta] for s in self.task(ref).samples[: self.config.n_test]],
                          sort_keys=True, default=str)
        budget = ("n_train", "max_steps")  # training settings, recorded with each run's training
        return {**{k: v for k, v in dataclasses.asdict(ref).items() if k not in budget},
                "test_samples": hashlib.sha256(blob.encode()).hexdigest()[:16]}

    def train_samples(self, ref: TaskRef) -> list[Sample]:
        """``n_train`` training samples of ``ref``: from its records file, else the world task's train split."""
        if ref.name not in self._train:
            n = self.config.n_train_for(ref)
            if ref.train.startswith(WORLD_SOURCE):
                from mmtune.world.tasks import get_world_task

                samples = get_world_task(ref.train[len(WORLD_SOURCE):]).samples("train", n, seed=0)
            elif ref.train:
                from mmtune.data.readers import read_records

                records = read_records(ref.train, root=ref.root or None)
                samples = records if len(records) <= n else random.Random(0).sample(records, n)
            else:
                raise ValueError(f"bench task {ref.name!r} has no training records: set its train: to a LLaVA "
                                 "JSON / messages JSONL / HF dataset (needed to tune on it or replay it)")
            self._train[ref.name] = samples
        return self._train[ref.name]

    def checked_train_samples(self, ref: TaskRef, processor) -> tuple[list[Sample], Any]:
        """``ref``'s training samples validated once (encoded by the training collator, ``checked_samples``),
        and that collator, which keeps their encodings, for every row that trains on them as they are
        (every row loads the same base, so the same processor); a bad record fails the first run, named."""
        from mmtune.recipes.sft import checked_samples, training_collator

        if ref.name not in self._checked:
            collator = training_collator(processor, self.config.training.max_length)
            self._checked[ref.name] = (checked_samples(self.train_samples(ref), processor,
                                                       self.config.training.max_length, skip_invalid=False,
                                                       collator=collator), collator)
        return self._checked[ref.name]

    def load_base(self, row: Row | None = None):
        """The base model; in 4 or 8 bits for a ``quantized(...)`` row (QLoRA)."""
        from mmtune.strategies.checkpoint import load_tuned

        quantization = row.quantization() if row is not None else None
        return load_tuned(self.base_path, **({"quantization": quantization} if quantization else {}))

    def scored_task(self, ref: TaskRef, row: Row, processor):
        """The task a target is scored by after tuning with ``row``: as it is, except after ICL tuning
        (k-shot, the row's k and rule, demonstrations from the target's training records) and CoT tuning
        (answers read after the rationale, no trigger). The base's zero-shot score stays the reference."""
        task = self.task(ref)
        for method in row.training_methods():
            if method.name == "icl":
                from mmtune.eval.icl import DemonstrationPool, IclDraw, IclSettings

                select = "nearest-text" if method.config.select == "nearest" else method.config.select
                pool = DemonstrationPool(self.train_samples(ref), f"{ref.name}'s training records")
                draw = IclDraw(IclSettings(shots=method.config.shots, select=select), pool)
                task = dataclasses.replace(task, name=f"{task.name}_{method.config.shots}shot",
                                           samples=draw.compose_all(task, task.samples[: self.config.n_test], 0))
            elif method.name == "cot":
                from mmtune.eval.cot import cot_task

                task = cot_task(task, trigger="", tokenizer=getattr(processor, "tokenizer", processor))
        return task

    def evaluate(self, model, processor, refs: list[TaskRef], run: str, row: Row | None = None) -> Scored:
        """Headline and per-sample scores per task label, answers cached across runs of the bench; targets
        are scored as ``row`` asks (``scored_task``)."""
        from mmtune.eval.runner import evaluate

        targets = {t.name for t in self.config.targets}
        tasks = [self.scored_task(r, row, processor) if row is not None and r.name in targets else self.task(r)
                 for r in refs]
        if len({t.name for t in tasks}) != len(tasks):
            raise ValueError(f"bench tasks {', '.join(r.name for r in refs)} resolve to eval tasks with the same "
                             "name; give each target/seen entry a different eval task")
        eval_dir = self.out / "evals" / run
        through_tools = {r.name for r in refs if r.name in targets and row is not None
                         and any(m.name == "tool_use" for m in row.training_methods())}
        plain = [t for r, t in zip(refs, tasks) if r.name not in through_tools]
        results = evaluate(model, processor, plain, batch_size=self.config.eval_batch_size,
                           limit=self.config.n_test, out_dir=eval_dir, cache_dir=self.out / "cache", progress=False)
        for r, t in zip(refs, tasks):
            if r.name in through_tools:
                results[t.name] = self.through_tools(model, processor, t, row, eval_dir)
        scored = Scored()
        for ref, task in zip(refs, tasks):
            result = results[task.name]
            key = _metric(ref, result)
            scored.scores[ref.name] = float(result["scores"][key])
            scored.ranges[ref.name] = ref.metric_range or metric_range(key)
            found = evaluated_sample_scores(task, eval_dir, self.config.n_test, result, key)
            scored.per_sample[ref.name] = found.to_record() if found is not None else None
        return scored

    def through_tools(self, model, processor, task, row: Row, eval_dir: Path) -> dict[str, Any]:
        """A target scored through the tool loop (decision mode, the model's own answer, the row's call
        format); writes its steps and answers into ``eval_dir``."""
        from mmtune.eval.runner import generate_answers
        from mmtune.tools.calls import call_format_for
        from mmtune.tools.evaluation import run_task_with_tools
        from mmtune.tools.loop import ToolLoop

        method = next(m for m in row.training_methods() if m.name == "tool_use")
        tokenizer = getattr(processor, "tokenizer", processor)
        model.eval()
        loop = ToolLoop(lambda samples, n: generate_answers(model, processor, samples, max_new_tokens=n),
                        call_format_for(processor, method.config.format),
                        count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        return run_task_with_tools(loop, task, limit=self.config.n_test, batch_size=self.config.eval_batch_size,
                                   out_dir=eval_dir)

    # -- the base, once ------------------------------------------------------------------------
    def base_scores(self) -> Scored:
        """Zero-shot target scores and seen scores before tuning; only tasks not yet scored are run
        (a base.json from before per-sample scores were kept is completed from the answer cache)."""
        path = self.out / BASE_FILE
        settings = {"model": str(self.base_path), "n_test": self.config.n_test}
        cached = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if cached.get("settings") != settings:
            cached = {"settings": settings, "scores": {}, "refs": {}}
        for key in ("ranges", "per_sample"):
            cached.setdefault(key, {})
        refs = [*self.config.targets, *self.config.seen]
        missing = [r for r in refs if cached["refs"].get(r.name) != self.test_fingerprint(r)
                   or r.name not in cached["per_sample"]]
        if missing:
            self.log(f"evaluating the base on {', '.join(r.name for r in missing)}")
            loaded = self.load_base()
            scored = self.evaluate(loaded.model, loaded.processor, missing, "base")
            for key in ("scores", "ranges", "per_sample"):
                cached[key].update(getattr(scored, key))
            cached["refs"].update({r.name: self.test_fingerprint(r) for r in missing})
            atomic_write_json(path, cached)
        return Scored(cached["scores"], cached["ranges"], cached["per_sample"])

    # -- runs ----------------------------------------------------------------------------------
    def settings(self, target: TaskRef, row: Row, seed: int) -> dict[str, Any]:
        """Everything a run's result depends on; a finished run with other settings is not reused."""
        from mmtune.recipes.sft import training_settings

        return {"model": str(self.base_path), "target": self.test_fingerprint(target),
                "seen": [self.test_fingerprint(s) for s in self.config.seen], "n_train": self.config.n_train_for(target),
                "n_test": self.config.n_test, "training": training_settings(self.config.training_for(row, seed, target)),
                "methods": list(row.methods), **({"quantized": row.quantized} if row.quantized else {})}

    def finished(self, rid: str, settings: dict[str, Any]) -> bool:
        path = self.out / RUNS_DIR / f"{rid}.json"
        if not path.exists():
            return False
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("settings") != settings:
            raise ValueError(f"{path} was run with other settings (model, test samples, data sizes or training); "
                             "use another --out folder or delete that file to rerun it")
        return True

    def needs_weights(self, row: Row) -> bool:
        return any(r.source == row.label for r in self.rows)

    def weights_dir(self, rid: str) -> Path:
        return self.out / WORK_DIR / rid

    def tune(self, target: TaskRef, row: Row, seed: int, base: Scored) -> dict[str, Any]:
        from mmtune.recipes.sft import train_sft

        rid = run_id(target.name, row, seed)
        loaded = self.load_base(row)
        methods = row.training_methods()
        seen = ([s for ref in self.config.seen for s in self.train_samples(ref)]
                if any(m.entry.needs_seen_data for m in methods) else [])
        training = dataclasses.replace(self.config.training_for(row, seed, target), run_name=rid)
        samples, collator = self.checked_train_samples(target, loaded.processor)
        result = train_sft(loaded.model, loaded.processor, samples, strategy=row.strategy, validated=True,
                           collator=collator,
                           output_dir=self.weights_dir(rid), training=training, methods=methods, seen_samples=seen,
                           logging_dir=self.out / TRACKING_DIR / rid)
        after = self.evaluate(result.model, loaded.processor, [target, *self.config.seen], rid, row)
        record = self.record(target, row, seed, base, after, kind="tune", trainable_params=result.summary.trainable_params,
                             total_params=result.summary.total_params, train_seconds=result.train_seconds,
                             peak_memory_mb=result.peak_memory_mb, final_loss=result.losses[-1] if result.losses else None,
                             losses=result.losses)  # report.html's loss curve
        log_scores(training.report_to, run_score_log(record), logging_dir=self.out / TRACKING_DIR / rid, run_name=rid,
                   step=len(result.losses))
        if self.needs_weights(row):
            add_scores(result.final_dir, card_scores(record))
        else:
            shutil.rmtree(self.weights_dir(rid), ignore_errors=True)
        return record

    def record(self, target: TaskRef, row: Row, seed: int, base: Scored, after: Scored,
               **extra: Any) -> dict[str, Any]:
        names = [s.name for s in self.config.seen]
        seen_before = {n: base.scores[n] for n in names}
        seen_after = {n: after.scores[n] for n in names}
        ranges = {n: base.ranges[n] for n in [target.name, *names]}
        scores = run_scores(after.scores[target.name], base.scores[target.name], seen_after, seen_before,
                            {n: ranges[n] for n in names}, ranges[target.name])
        return {"run_id": run_id(target.name, row, seed), "target": target.name, "row": row.label,
                "strategy": row.strategy, "seed": seed, **scores.to_dict(),
                "target_score": after.scores[target.name], "target_zero_shot": base.scores[target.name],
                "seen_before": seen_before, "seen_after": seen_after, "ranges": ranges, **extra,
                "per_sample": {n: after.per_sample.get(n) for n in [target.name, *names]},
                "settings": self.settings(target, row, seed)}

    # -- posterior rows: no training, weights of finished runs ------------------------------
    def tuned_state_dict(self, rid: str) -> dict[str, Any]:
        """A finished run's weights as a plain model's state dict (PEFT updates merged in)."""
        from mmtune.recipes.sft import FINAL_DIR
        from mmtune.strategies.checkpoint import load_tuned, merge_for_export, tuned_strategy

        final = self.weights_dir(rid) / FINAL_DIR
        return merge_for_export(load_tuned(final).model, tuned_strategy(final)).state_dict()

    def evaluate_weights(self, state_dict: dict[str, Any], refs: list[TaskRef], run: str, row: Row) -> Scored:
        loaded = self.load_base()
        loaded.model.load_state_dict(state_dict)
        return self.evaluate(loaded.model, loaded.processor, refs, run, row)

    def source_record(self, target: TaskRef, row: Row, seed: int) -> dict[str, Any]:
        source = self.by_label[row.source]
        return json.loads((self.out / RUNS_DIR / f"{run_id(target.name, source, seed)}.json").read_text(encoding="utf-8"))

    def posterior(self, row: Row, seed: int, targets: list[TaskRef], base: Scored) -> list[dict[str, Any]]:
        """Apply the row's posterior method (``mmtune.methods``) to its source row's finished runs:
        WiSE-FT to one target's run, a merge to every target's at once (one model, scored on each)."""
        method = row.posterior_method()
        acting = method.build()
        source = self.by_label[row.source]
        tuned = [self.tuned_state_dict(run_id(t.name, source, seed)) for t in targets]
        state = acting.apply(self.load_base().model.state_dict(), tuned)
        after = self.evaluate_weights(state, [*targets, *self.config.seen], self.item_id(row, seed, targets), row)
        cost = _cost([self.source_record(t, row, seed) for t in targets])
        return [self.record(t, row, seed, base, after, kind=method.name, **cost) for t in targets]

    # -- the loop ------------------------------------------------------------------------------
    def item_id(self, row: Row, seed: int, targets: list[TaskRef]) -> str:
        """The id of a row's work at a seed: its run's, or for a merge of every target's runs the merged model's."""
        return run_id(targets[0].name, row, seed) if len(targets) == 1 else f"merged__{slug(row.label)}__seed{seed}"

    def plan(self) -> list[PlanItem]:
        """Trained runs first (posterior rows need them), then posterior rows on one run (WiSE-FT),
        then those on every target's run at once (merges)."""
        seeds, targets = self.config.seeds, self.config.targets
        runs = {r.label: r.posterior_method().build().runs for r in self.rows if not r.trains}
        trained = [(r, s, [t]) for s in seeds for t in targets for r in self.rows if r.trains]
        one = [(r, s, [t]) for s in seeds for t in targets for r in self.rows if runs.get(r.label) == "one"]
        every = [(r, s, list(targets)) for s in seeds for r in self.rows if runs.get(r.label) == "targets"]
        work = trained + one + every
        return [PlanItem(r, s, ts, self.item_id(r, s, ts),
                         f"[{i}/{len(work)}] {','.join(t.name for t in ts)} | {r.label} | seed {s}",
                         {(r.source, s, t.name) for t in ts} if r.source else set())
                for i, (r, s, ts) in enumerate(work, 1)]

    def is_done(self, row: Row, seed: int, targets: list[TaskRef]) -> bool:
        done = all(self.finished(run_id(t.name, row, seed), self.settings(t, row, seed)) for t in targets)
        # A source row whose weights were dropped (posterior row added later) must train again.
        return done and (not self.needs_weights(row)
                         or all(self.weights_dir(run_id(t.name, row, seed)).is_dir() for t in targets))

    def execute(self, row: Row, seed: int, targets: list[TaskRef], base: Scored) -> list[dict[str, Any]]:
        """Tune the row (or apply its posterior method) and write each finished run's JSON atomically."""
        records = [self.tune(targets[0], row, seed, base)] if row.trains else self.posterior(row, seed, targets, base)
        for r in records:
            atomic_write_json(self.out / RUNS_DIR / f"{r['run_id']}.json", r)
        return records

    def progress(self, item: PlanItem, records: list[dict[str, Any]], seconds: float, worker: int | str | None = None) -> None:
        """One line per finished run: its scores, time and (in a parallel bench) the worker that ran it."""
        by = f", worker {worker}" if worker is not None else ""
        for r in records:
            self.log(f"{item.where}: {r['target']} E {r['E']:+.1f} F {r['F']:+.1f} O {r['O']:+.1f} ({seconds:.0f} s{by})")

    def workers(self, runs: int) -> tuple[int, list[str]]:
        """How many worker processes ``runs`` get (never more than runs), and the GPUs they share."""
        if self.config.workers == 1:
            return 1, []
        from mmtune.bench.parallel import resolve_workers, visible_gpus

        gpus = visible_gpus()
        if self.config.workers == "auto" and self.config.model and not gpus:
            # auto on a CPU parallelises the built-in world base only: a checkpoint of the user's may be
            # large, and every worker holds its own copy. A number asks for workers whatever the model.
            return 1, []
        return min(resolve_workers(self.config.workers, gpus), runs), gpus

    def run(self) -> dict[str, Path]:
        """Run every unfinished (row, seed, target), on ``config.workers`` processes, and render the report;
        returns the report files."""
        from mmtune.config import to_dict

        atomic_write_json(self.out / "config.json", to_dict(self.config))
        base = self.base_scores()
        todo = []
        for item in self.plan():
            if self.is_done(item.row, item.seed, item.targets):
                self.log(f"{item.where}: finished earlier, skipped")
            else:
                todo.append(item)
        if todo and self.config.executor == "dask":
            from mmtune.bench.parallel import run_dask

            # A scheduler's cluster has its own workers; without one, a local cluster of `workers` processes.
            workers, gpus = self.workers(len(todo)) if not self.config.scheduler else (0, [])
            run_dask(self, todo, base, workers, gpus, self.config.scheduler, self.progress)
            return write_report(self.out, resamples=self.config.bootstrap_resamples)
        workers, gpus = self.workers(len(todo))
        if workers > 1:
            from mmtune.bench.parallel import LOGS_DIR, run_parallel

            self.log(f"{sum(len(i.targets) for i in todo)} runs on {workers} worker processes, "
                     f"{'on GPUs ' + ','.join(gpus) if gpus else 'one thread each'}; each run's output in {self.out / LOGS_DIR}")
            run_parallel(self, todo, base, workers, gpus, self.progress)
        else:
            for item in todo:
                start = time.perf_counter()
                self.progress(item, self.execute(item.row, item.seed, item.targets, base), time.perf_counter() - start)
        return write_report(self.out, resamples=self.config.bootstrap_resamples)


def run_score_log(record: dict[str, Any]) -> dict[str, float]:
    """A finished run's scores as the trackers get them: E, F, O, the target's score and each seen set's."""
    return {"E": record["E"], "F": record["F"], "O": record["O"], f"target/{record['target']}": record["target_score"],
            **{f"seen/{name}": value for name, value in record["seen_after"].items()}}


def card_scores(record: dict[str, Any]) -> list[Score]:
    """A finished run's scores for its model card: E / F / O on its target, and every set before and after."""
    target = record["target"]
    return [*(Score(target, name, record[name], "bench: E / F / O") for name in ("E", "F", "O")),
            Score(target, "target score", record["target_score"], "bench target", record["target_zero_shot"]),
            *(Score(name, "seen score", value, "bench seen set", record["seen_before"][name])
              for name, value in record["seen_after"].items())]


def _metric(ref: TaskRef, result: dict[str, Any]) -> str:
    """The score key a bench task is scored by: its ``metric``, else the eval task's headline."""
    key = ref.metric or result["metric"]
    if result["scores"].get(key) is None:
        raise ValueError(f"bench task {ref.name!r}: eval task scores {', '.join(result['scores'])}, not {key!r}; "
                         "set its metric: to one of them")
    return key


def _cost(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """A posterior row costs what training its source runs cost (it adds no training)."""
    return {"trainable_params": sources[0].get("trainable_params"),
            "total_params": sources[0].get("total_params"),
            "train_seconds": sum(s.get("train_seconds") or 0.0 for s in sources),
            "peak_memory_mb": max((s.get("peak_memory_mb") or 0.0) for s in sources)}


def run_bench(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run (or resume) the bench ``config`` describes; returns the paths of results, table and plot."""
    return Bench(config, log).run()
