"""The alignment bench's report: results.json, report.md (E, F, O with 95% intervals, every hallucination
set's improvement and every seen set's change, the runs' final reward margin and preference accuracy),
pareto.png (E vs F and the alignment tax per seen set, drawn by ``plots.bench_figure``), curves.png (reward
margin, preference accuracy and GRPO reward per step) and a recommendation that says when rows tie.

Intervals are the tuning bench's: a percentile bootstrap over test samples, paired with the base, every row
drawn on the same resamples (``uncertainty``); E is resampled as the mean improvement over the
hallucination sets, so CHAIR_i's drop and POPE's F1 gains move together in each resample.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.bench.plots import bench_figure
from mmtune.bench.report import points, read_bench, recommendations, score_cell
from mmtune.bench.scores import mean_std
from mmtune.bench.uncertainty import (
    LEVEL,
    RESAMPLES,
    SampleScores,
    paired_delta,
    percentile_interval,
    resample_indices,
)
from mmtune.files import atomic_write_json, atomic_write_text


def align_replicates(runs: list[dict[str, Any]], base_per_sample: dict[str, Any] | None,
                     resamples: int = RESAMPLES) -> dict[str, np.ndarray] | None:
    """A row's resampled E, F, O and each set's improvement on the common scale (key ``set:<name>``),
    seeds averaged within each resample; None without per-sample scores."""
    first = runs[0]
    names = [*first["hallucination_sets"], *sorted(first["seen_deltas"])]
    records = [base_per_sample or {}] + [r.get("per_sample") or {} for r in runs]
    if any(rec.get(n) is None for rec in records for n in names):
        return None
    base = {n: SampleScores.from_record(base_per_sample[n]) for n in names}
    if any(len(SampleScores.from_record(r["per_sample"][n])) != len(base[n]) for r in runs for n in names):
        return None  # scored on other test samples than the base in base.json
    lower = set(first["lower_is_better"])
    out = {}
    for n in names:
        idx = resample_indices(n, len(base[n]), resamples)
        raw = np.mean([paired_delta(SampleScores.from_record(r["per_sample"][n]), base[n], idx) for r in runs], axis=0)
        change = 100.0 * raw / float(first["ranges"][n])
        out[f"set:{n}"] = 0.0 - change if n in lower else change
    e = np.mean([out[f"set:{n}"] for n in first["hallucination_sets"]], axis=0)
    f = np.mean([out[f"set:{n}"] for n in sorted(first["seen_deltas"])], axis=0)
    return {"E": e, "F": f, "O": e + f, **out}


def _final(runs: list[dict[str, Any]], key: str) -> float | None:
    """The mean over seeds of a curve's last logged value of ``key`` (None when no run logs it)."""
    last = [next((s[key] for s in reversed(r.get("curve", [])) if key in s), None) for r in runs]
    last = [v for v in last if v is not None]
    return sum(last) / len(last) if last else None


def summarize_align(runs: list[dict[str, Any]], base: dict[str, Any] | None,
                    resamples: int = RESAMPLES) -> dict[str, dict[str, Any]]:
    """row -> mean ± std of E, F, O over seeds, their 95% intervals, each set's mean change (improvement
    on the common scale for the hallucination sets, raw and scaled for the seen sets), final margin and
    preference accuracy, cost."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        grouped.setdefault(r["row"], []).append(r)
    summary = {}
    for row, rs in grouped.items():
        reps = align_replicates(rs, (base or {}).get("per_sample"), resamples)
        ci = (lambda k: None) if reps is None else (lambda k: list(percentile_interval(reps[k])))

        def mean_of(key: str) -> dict[str, float]:
            return {n: sum(r[key][n] for r in rs) / len(rs) for n in rs[0][key]}

        summary[row] = {
            **{k: list(mean_std([r[k] for r in rs])) for k in ("E", "F", "O")},
            **{f"{k}_ci": ci(k) for k in ("E", "F", "O")},
            "hallucination": mean_of("hallucination_scaled"),
            "hallucination_ci": {n: ci(f"set:{n}") for n in rs[0]["hallucination_sets"]},
            "seen_deltas": mean_of("seen_deltas"), "seen_scaled": mean_of("seen_scaled"),
            "scores_after": mean_of("scores_after"),
            "objective": rs[0]["objective"], "strategy": rs[0]["strategy"], "seeds": [r["seed"] for r in rs],
            "final_margin": _final(rs, "margin"), "final_accuracy": _final(rs, "accuracy"),
            "final_reward": _final(rs, "reward"),
            "trainable_params": rs[0].get("trainable_params"),
            "train_seconds": sum(r["train_seconds"] for r in rs) / len(rs),
        }
    return summary


LEGEND = (
    "E = hallucination reduction: the mean improvement over the hallucination sets, each counted as 100 x change "
    "/ its metric's full range and signed so that better is positive (a CHAIR_i drop, an F1 gain); F = mean "
    "change on the seen sets (negative = the alignment tax); O = E + F. Cells read mean ± std over seeds [95% "
    "percentile bootstrap interval over test samples, {resamples} resamples, paired with the base]; a row beats "
    "another only where intervals are disjoint; * = on the (E, F) Pareto frontier. margin / pref. acc. = the "
    "last logged step's reward margin and preference accuracy (TRL's rewards/margins, rewards/accuracies); "
    "GRPO's is its mean reward; SFT logs neither."
)


def _opt(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def align_markdown(summary: dict[str, dict[str, Any]], rec: dict[str, Any], base: dict[str, Any] | None,
                   first_run: dict[str, Any], resamples: int) -> str:
    """The table (rows sorted by O), the base's scores, the recommendation and the figures."""
    from mmtune.bench.pareto import pareto_front

    hall, seen = first_run["hallucination_sets"], sorted(first_run["seen_deltas"])
    metrics, lower = first_run["metrics"], set(first_run["lower_is_better"])
    front = {p.name for p in pareto_front(points(summary))}
    lines = ["# mmtune bench: preference alignment", "", LEGEND.format(resamples=resamples), ""]
    if base:
        scores = base["scores"]
        lines += ["Base: " + ", ".join(f"{n} {metrics[n]} {scores[n]:.1f}" for n in [*hall, *seen]) + ".", ""]
    heads = [f"{n} {metrics[n]} {'drop' if n in lower else 'gain'}" for n in hall] + [f"Δ {n}" for n in seen]
    lines += ["| row | E | F | O | " + " | ".join(heads) + " | margin | pref. acc. | trainable | time (s) |",
              "|---" * (8 + len(heads)) + "|"]
    for name, r in sorted(summary.items(), key=lambda kv: -kv[1]["O"][0]):
        n = len(r["seeds"])
        cells = [score_cell([r["hallucination"][h], 0.0], 1, r["hallucination_ci"][h]) for h in hall]
        cells += [f"{r['seen_deltas'][s]:+.1f}" for s in seen]
        margin = r["final_margin"] if r["final_reward"] is None else r["final_reward"]
        lines.append(f"| {name}{' *' if name in front else ''} | {score_cell(r['E'], n, r['E_ci'])} | "
                     f"{score_cell(r['F'], n, r['F_ci'])} | {score_cell(r['O'], n, r['O_ci'])} | "
                     + " | ".join(cells) + f" | {_opt(margin, '+.2f')} | {_opt(r['final_accuracy'], '.2f')} | "
                     f"{'-' if r['trainable_params'] is None else format(r['trainable_params'], ',')} | {r['train_seconds']:.0f} |")
    lines += ["", *after_table(summary, base, hall, metrics, lower)]
    tied = f", tied with {', '.join(f'`{t}`' for t in rec['tied'])}" if rec["tied"] else ""
    lines += ["", f"**Recommendation: `{rec['strategy']}`{tied}** — {rec['why']}.", "",
              "![E (hallucination reduction) vs F (alignment tax), beside the seen-set changes](pareto.png)", "",
              "![reward margin, preference accuracy and GRPO reward per step](curves.png)", ""]
    return "\n".join(lines)


SMOOTHING = 5  # steps in the trailing mean drawn over each curve (a step's batch of 8 is noisy)


def trailing_mean(values: list[float], window: int = SMOOTHING) -> list[float]:
    """Each value averaged with up to ``window - 1`` values before it."""
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def after_table(summary: dict[str, dict[str, Any]], base: dict[str, Any] | None, hall: list[str],
                metrics: dict[str, str], lower: set[str]) -> list[str]:
    """The hallucination sets' scores after alignment, mean over seeds, with the change relative to the
    base's score (how much of the base's hallucination a row removed)."""
    if not base:
        return []
    before = base["scores"]
    lines = ["Scores after alignment (change relative to the base's score):", "",
             "| row | " + " | ".join(f"{n} {metrics[n]} (base {before[n]:.1f})" for n in hall) + " |",
             "|---" * (1 + len(hall)) + "|"]
    for name, r in sorted(summary.items(), key=lambda kv: -kv[1]["O"][0]):
        cells = []
        for n in hall:
            after = r["scores_after"][n]
            relative = f" ({round(100 * (after - before[n]) / before[n]):+d}%)" if before[n] else ""
            cells.append(f"{after:.1f}{relative}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def curves_figure(runs: list[dict[str, Any]], path: str | Path) -> Path:
    """Reward margin, preference accuracy and GRPO's mean reward per step, one line per run (trailing
    mean over ``SMOOTHING`` steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("margin", "reward margin (chosen - rejected)"), ("accuracy", "preference accuracy"),
              ("reward", "GRPO mean reward"))
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, panels):
        for r in runs:
            steps = [(s["step"], s[key]) for s in r.get("curve", []) if key in s]
            if steps:
                x, y = zip(*steps)
                ax.plot(x, trailing_mean(list(y)), label=f"{r['row']} (seed {r['seed']})", linewidth=1)
        ax.set(title=f"{title}, mean of {SMOOTHING} steps", xlabel="optimizer step")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_align_report(out_dir: str | Path, resamples: int | None = None) -> dict[str, Path]:
    """(Re-)render results.json, report.md, pareto.png and curves.png from ``out_dir``'s finished runs."""
    out_dir = Path(out_dir)
    runs, base, config = read_bench(out_dir)
    resamples = int(resamples or config.get("bootstrap_resamples", RESAMPLES))
    summary = summarize_align(runs, base, resamples)
    target = runs[0]["target"]
    rec = recommendations({target: summary})[target]
    # bench_figure's heatmap reads seen_deltas / seen_scaled: the alignment tax per seen set
    results = {"base": None if base is None else {k: v for k, v in base.items() if k != "per_sample"},
               "bootstrap": {"resamples": resamples, "level": LEVEL, "over": "test samples, paired with the base"},
               "summary": summary, "recommendation": rec,
               "runs": [{k: v for k, v in r.items() if k not in ("per_sample", "settings")} for r in runs]}
    return {
        "results": atomic_write_json(out_dir / "results.json", results),
        "table": atomic_write_text(out_dir / "report.md", align_markdown(summary, rec, base, runs[0], resamples)),
        "plot": bench_figure({target: summary}, {target: points(summary)}, out_dir / "pareto.png"),
        "curves": curves_figure(runs, out_dir / "curves.png"),
    }


def render_report(out_dir: str | Path) -> dict[str, Path]:
    """Re-render a bench folder's report: the align bench's for a folder it wrote, else the tuning bench's."""
    config = Path(out_dir) / "config.json"
    if config.exists() and json.loads(config.read_text(encoding="utf-8")).get("bench") == "align":
        return write_align_report(out_dir)
    from mmtune.bench.report import write_report

    return write_report(out_dir)
