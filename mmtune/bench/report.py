"""Render a bench from its finished run records: results.json, a markdown table with 95% intervals,
a figure (E vs F with the Pareto frontier beside a heatmap of seen-set deltas per target), a
recommendation per target that says when rows tie, and the paper's findings decided (findings.py). Works
on a half-finished bench too, and on benches recorded before per-sample scores were kept (their intervals
read n/a).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.bench.findings import decide, findings_markdown
from mmtune.bench.html import short_count, write_html
from mmtune.bench.pareto import Point, pareto_front, recommend
from mmtune.bench.plots import bench_figure
from mmtune.bench.scores import DEFAULT_RANGE, SCALE_CHOICE, RunScores, aggregate_seeds
from mmtune.bench.uncertainty import (
    LEVEL,
    RESAMPLES,
    SampleScores,
    SeedScores,
    percentile_interval,
    row_replicates,
)
from mmtune.files import atomic_write_json, atomic_write_text

RUNS_DIR = "runs"
BASE_FILE = "base.json"
NO_SAMPLES = ("runs or base scores recorded without per-sample scores (benches run before mmtune kept them, or "
              "a score no per-sample form reproduces); rerun into a new --out folder to get intervals")


def load_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run record under ``out_dir/runs``, in run-id order."""
    runs_dir = Path(out_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir} does not exist; is {out_dir} a bench output folder?")
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(runs_dir.glob("*.json"))]


def _sample_scores(records: dict[str, Any] | None, names: list[str]) -> dict[str, SampleScores] | None:
    if not records or any(records.get(n) is None for n in names):
        return None
    return {n: SampleScores.from_record(records[n]) for n in names}


def row_bootstrap(target: str, runs: list[dict[str, Any]], base_per_sample: dict[str, Any] | None,
                  resamples: int = RESAMPLES) -> dict[str, np.ndarray] | None:
    """A row's resampled E, F, O and raw seen deltas (``row_replicates``); None without per-sample scores."""
    seen = sorted(runs[0]["seen_deltas"])
    base = _sample_scores(base_per_sample, [target, *seen])
    per_run = [_sample_scores(r.get("per_sample"), [target, *seen]) for r in runs]
    if base is None or any(p is None for p in per_run) or any("ranges" not in r for r in runs):
        return None
    if any(len(p[n]) != len(base[n]) for p in per_run for n in p):
        return None  # scored on other test samples than the base in base.json
    ranges = {n: float(runs[0]["ranges"].get(n, DEFAULT_RANGE)) for n in [target, *seen]}
    seeds = [SeedScores(p[target], {n: p[n] for n in seen}) for p in per_run]
    return row_replicates(target, seeds, base, ranges, resamples)


def row_intervals(target: str, runs: list[dict[str, Any]], base_per_sample: dict[str, Any] | None,
                  resamples: int = RESAMPLES) -> dict[str, Any] | None:
    """95% bootstrap intervals of a row's E, F, O and raw seen deltas; None without per-sample scores."""
    reps = row_bootstrap(target, runs, base_per_sample, resamples)
    if reps is None:
        return None
    seen = sorted(runs[0]["seen_deltas"])
    return {**{f"{k}_ci": list(percentile_interval(reps[k])) for k in ("E", "F", "O")},
            "seen_deltas_ci": {n: list(percentile_interval(reps[f"seen:{n}"])) for n in seen}}


def _grouped(runs: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """target -> row -> its runs (one per seed)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        grouped.setdefault(run["target"], {}).setdefault(run["row"], []).append(run)
    return grouped


def bootstrap(runs: list[dict[str, Any]], base: dict[str, Any] | None = None,
              resamples: int = RESAMPLES) -> dict[str, dict[str, dict[str, np.ndarray] | None]]:
    """target -> row -> its bootstrap replicates of E, F, O (None without per-sample scores); every row of a
    target is drawn on the same resamples, so two rows' replicates pair sample by sample."""
    base_samples = (base or {}).get("per_sample")
    return {target: {row: row_bootstrap(target, rs, base_samples, resamples) for row, rs in rows.items()}
            for target, rows in _grouped(runs).items()}


def summarize(runs: list[dict[str, Any]], base: dict[str, Any] | None = None,
              resamples: int = RESAMPLES) -> dict[str, dict[str, dict[str, Any]]]:
    """target -> row -> mean ± std of E, F, O over seeds, their 95% intervals (None without per-sample
    scores), mean cost, mean seen-set deltas raw and on F's scale."""
    base_samples = (base or {}).get("per_sample")
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for target, rows in _grouped(runs).items():
        summary[target] = {}
        for row, rs in rows.items():
            agg = aggregate_seeds([RunScores(r["E"], r["F"], r["O"]) for r in rs])
            seen = sorted(rs[0]["seen_deltas"])
            intervals = row_intervals(target, rs, base_samples, resamples)
            summary[target][row] = {
                **{k: list(v) for k, v in agg.items()},
                **(intervals or {"E_ci": None, "F_ci": None, "O_ci": None, "seen_deltas_ci": None}),
                "seeds": sorted(r["seed"] for r in rs),
                "kind": rs[0]["kind"],
                "seen_deltas": {t: _mean([r["seen_deltas"][t] for r in rs]) for t in seen},
                "seen_scaled": {t: _mean([r.get("seen_scaled", r["seen_deltas"])[t] for r in rs]) for t in seen},
                "ranges": rs[0].get("ranges"),
                "trainable_params": rs[0].get("trainable_params"),
                "train_seconds": _mean([r.get("train_seconds") for r in rs]),
                "peak_memory_mb": _mean([r.get("peak_memory_mb") for r in rs]),
            }
    return summary


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _ci(value: list[float] | None) -> tuple[float, float] | None:
    return None if value is None else (value[0], value[1])


def points(rows: dict[str, dict[str, Any]]) -> list[Point]:
    return [Point(name, r["E"][0], r["F"][0], _ci(r["E_ci"]), _ci(r["F_ci"]), _ci(r["O_ci"]))
            for name, r in rows.items()]


def recommendations(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per target: the frontier row with the best O, the rows it ties with, and why."""
    out = {}
    for target, rows in summary.items():
        rec = recommend(points(rows))
        out[target] = {"strategy": rec.name, "tied": list(rec.tied), "why": rec.why}
    return out


def score_cell(mean_std: list[float], n_seeds: int, ci: list[float] | None) -> str:
    mean, std = mean_std
    text = f"{mean:+.1f} ± {std:.1f}" if n_seeds > 1 else f"{mean:+.1f}"
    return f"{text} [{'n/a' if ci is None else f'{ci[0]:+.1f}, {ci[1]:+.1f}'}]"




def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


LEGEND = (
    "E = target score gain over the base's zero-shot score; F = mean change on the seen tasks (negative = "
    "forgetting); O = E + F. Each change is counted on one scale before seen sets are averaged: 100 x change "
    "/ the metric's full range (100 for accuracies, VQA accuracy, exact match, F1, acc@0.5; 1000 for CIDEr-D), "
    "so accuracy changes are plain points and a caption CIDEr-D change counts a tenth (it is defined when a "
    "base scores 0 and keeps the paper's points where every set is 0-100); the Δ columns are the raw "
    "per-set changes, mean over seeds. Cells read mean ± std over seeds [95% percentile bootstrap interval "
    "over test samples, {resamples} resamples, paired with the base]. A row beats another only where their "
    "intervals are disjoint: * = on the (E, F) Pareto frontier (no row at least as good on both and better "
    "beyond the noise on one); the recommendation ties with every row whose O interval overlaps its own. "
    "Memory is the training's peak: CUDA's allocated peak on GPU; on CPU the process's peak RSS, counted "
    "from the start of each run's training on Linux (elsewhere the process's lifetime peak)."
)


def _recommendation_line(target: str, rec: dict[str, Any]) -> str:
    if rec["tied"]:
        return (f"**Recommendation for {target}: `{rec['strategy']}`, tied with "
                f"{', '.join(f'`{t}`' for t in rec['tied'])}** — {rec['why']}.")
    return f"**Recommendation for {target}: `{rec['strategy']}`** — {rec['why']}."


def markdown(summary: dict[str, dict[str, dict[str, Any]]], recs: dict[str, dict[str, Any]],
             base: dict[str, float] | None = None, notes: list[str] | None = None,
             resamples: int = RESAMPLES) -> str:
    """One table per target (rows sorted by O), frontier rows starred, then the recommendation."""
    lines = ["# mmtune bench", "", LEGEND.format(resamples=resamples), ""]
    lines += [f"Note: {n}" for n in notes or []] + ([""] if notes else [])
    for target, rows in summary.items():
        front = {p.name for p in pareto_front(points(rows))}
        seen = sorted(next(iter(rows.values()))["seen_deltas"])
        lines += [f"## {target}", ""]
        if base and target in base:
            before = ", ".join(f"{t} {base[t]:.1f}" for t in seen if t in base)
            lines += [f"Base: {target} zero-shot {base[target]:.1f}; seen before tuning: {before}.", ""]
        lines += ["| strategy | E | F | O | " + " | ".join(f"Δ {t}" for t in seen)
                  + " | trainable | time (s) | memory (MB) |", "|---" * (7 + len(seen)) + "|"]
        for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["O"][0]):
            n = len(r["seeds"])
            lines.append(
                f"| {name}{' *' if name in front else ''} | {score_cell(r['E'], n, r['E_ci'])} | "
                f"{score_cell(r['F'], n, r['F_ci'])} | {score_cell(r['O'], n, r['O_ci'])} | "
                + " | ".join(f"{r['seen_deltas'][t]:+.1f}" for t in seen)
                + f" | {short_count(r['trainable_params'])} | {_num(r['train_seconds'], '.1f')} | "
                f"{_num(r['peak_memory_mb'], '.0f')} |"
            )
        lines += ["", _recommendation_line(target, recs[target]), ""]
    lines += ["![E vs F per target, beside its seen-set deltas](pareto.png)", ""]
    return "\n".join(lines)


def _notes(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    missing = [f"{t}/{row}" for t, rows in summary.items() for row, r in rows.items() if r["E_ci"] is None]
    if not missing:
        return []
    listed = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
    total = sum(len(rows) for rows in summary.values())
    note = (f"intervals n/a for {len(missing)} of {total} rows ({listed}): {NO_SAMPLES}; "
            "without intervals rows are compared on their means.")
    return [note]


def _without_samples(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record without its per-sample scores and settings (both stay in runs/*.json and base.json)."""
    return None if record is None else {k: v for k, v in record.items() if k not in ("per_sample", "settings")}


def read_bench(out_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    """A bench output folder's finished runs, its base.json (None if absent) and config.json ({} if absent)."""
    out_dir = Path(out_dir)
    runs = load_runs(out_dir)
    if not runs:
        raise ValueError(f"{out_dir / RUNS_DIR} holds no finished runs yet; nothing to report")
    base_path, config_path = out_dir / BASE_FILE, out_dir / "config.json"
    base = json.loads(base_path.read_text(encoding="utf-8")) if base_path.exists() else None
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    return runs, base, config


def write_report(out_dir: str | Path, resamples: int | None = None) -> dict[str, Path]:
    """(Re-)render results.json, report.md, pareto.png, the paper's findings (findings.md, findings.json) and
    report.html from ``out_dir``'s finished runs; ``resamples`` defaults to the bench config's (config.json), else 1000."""
    out_dir = Path(out_dir)
    runs, base, config = read_bench(out_dir)
    if resamples is None:
        resamples = int(config.get("bootstrap_resamples", RESAMPLES))
    summary = summarize(runs, base, resamples)
    findings = decide(summary, bootstrap(runs, base, resamples))
    recs = recommendations(summary)
    notes = _notes(summary)
    results = {
        "base": _without_samples(base),
        "scale": SCALE_CHOICE,
        "bootstrap": {"resamples": resamples, "level": LEVEL, "over": "test samples, paired with the base",
                      "interval": "percentile", "seeds": "averaged within each resample",
                      "per_sample_scores": f"{RUNS_DIR}/*.json and {BASE_FILE}, key per_sample"},
        "summary": summary, "recommendations": recs, "notes": notes,
        "runs": [_without_samples(r) for r in runs],
    }
    return {
        "results": atomic_write_json(out_dir / "results.json", results),
        "table": atomic_write_text(out_dir / "report.md",
                                   markdown(summary, recs, (base or {}).get("scores"), notes, resamples)),
        "plot": bench_figure(summary, {t: points(rows) for t, rows in summary.items()}, out_dir / "pareto.png"),
        "findings": atomic_write_text(out_dir / "findings.md", findings_markdown(findings)),
        "findings_json": atomic_write_json(out_dir / "findings.json", findings.to_dict()),
        # after the plot: the page embeds pareto.png
        "html": write_html(out_dir, summary, recs, {t: points(rows) for t, rows in summary.items()}, runs,
                           (base or {}).get("scores"), config, LEGEND.format(resamples=resamples), _recommendation_line),
    }
