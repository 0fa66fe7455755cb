"""Render a bench from its finished run records: results.json, a markdown table, an E-vs-F scatter
with the Pareto frontier, and a recommendation per target. Works on a half-finished bench too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmtune.bench.pareto import Point, pareto_front, recommend
from mmtune.bench.scores import RunScores, aggregate_seeds
from mmtune.files import atomic_write_json, atomic_write_text

RUNS_DIR = "runs"
BASE_FILE = "base.json"


def load_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run record under ``out_dir/runs``, in run-id order."""
    runs_dir = Path(out_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir} does not exist; is {out_dir} a bench output folder?")
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(runs_dir.glob("*.json"))]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """target -> row -> mean ± std of E, F, O over seeds, mean cost, per-seen-task mean deltas."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        grouped.setdefault(run["target"], {}).setdefault(run["row"], []).append(run)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for target, rows in grouped.items():
        summary[target] = {}
        for row, rs in rows.items():
            agg = aggregate_seeds([RunScores(r["E"], r["F"], r["O"]) for r in rs])
            seen = sorted(rs[0]["seen_deltas"])
            summary[target][row] = {
                **{k: list(v) for k, v in agg.items()},
                "seeds": sorted(r["seed"] for r in rs),
                "kind": rs[0]["kind"],
                "seen_deltas": {t: sum(r["seen_deltas"][t] for r in rs) / len(rs) for t in seen},
                "trainable_params": rs[0].get("trainable_params"),
                "train_seconds": _mean([r.get("train_seconds") for r in rs]),
                "peak_memory_mb": _mean([r.get("peak_memory_mb") for r in rs]),
            }
    return summary


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def points(rows: dict[str, dict[str, Any]]) -> list[Point]:
    return [Point(name, r["E"][0], r["F"][0]) for name, r in rows.items()]


def recommendations(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, str]]:
    """Per target: the frontier row with the best O and why."""
    out = {}
    for target, rows in summary.items():
        rec = recommend(points(rows))
        out[target] = {"strategy": rec.name, "why": rec.why}
    return out


def _pm(mean_std: list[float], n_seeds: int) -> str:
    mean, std = mean_std
    return f"{mean:+.1f} ± {std:.1f}" if n_seeds > 1 else f"{mean:+.1f}"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def markdown(summary: dict[str, dict[str, dict[str, Any]]], recs: dict[str, dict[str, str]],
             base: dict[str, float] | None = None) -> str:
    """One table per target (rows sorted by O), frontier rows starred, then the recommendation."""
    legend = ("E = target score gain over the base's zero-shot score; F = mean change on the seen "
              "tasks (negative = forgetting); O = E + F. * = on the (E, F) Pareto frontier. Memory is "
              "the CUDA peak on GPU, the process's peak RSS on CPU (it only grows over a bench).")
    lines = ["# mmtune bench", "", legend, ""]
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
                f"| {name}{' *' if name in front else ''} | {_pm(r['E'], n)} | {_pm(r['F'], n)} | "
                f"{_pm(r['O'], n)} | " + " | ".join(f"{r['seen_deltas'][t]:+.1f}" for t in seen)
                + f" | {_count(r['trainable_params'])} | {_num(r['train_seconds'], '.1f')} | "
                f"{_num(r['peak_memory_mb'], '.0f')} |"
            )
        rec = recs[target]
        lines += ["", f"**Recommendation for {target}: `{rec['strategy']}`** — {rec['why']}.", ""]
    return "\n".join(lines)


def scatter(summary: dict[str, dict[str, dict[str, Any]]], path: str | Path) -> Path:
    """E (x) vs F (y) per target, every row labelled, the Pareto frontier drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the bench runs on servers and in tests
    import matplotlib.pyplot as plt

    targets = list(summary)
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 4.5), squeeze=False)
    for ax, target in zip(axes[0], targets):
        pts = points(summary[target])
        front = pareto_front(pts)
        ax.scatter([p.E for p in pts], [p.F for p in pts], color="tab:gray", label="strategy")
        ax.plot([p.E for p in front], [p.F for p in front], "o-", color="tab:red", label="Pareto frontier")
        for p in pts:
            ax.annotate(p.name, (p.E, p.F), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set(title=target, xlabel="E (specialization)", ylabel="F (stabilization; < 0 = forgetting)")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)  # atomic like every other output
    return path


def write_report(out_dir: str | Path) -> dict[str, Path]:
    """(Re-)render results.json, report.md and pareto.png from ``out_dir``'s finished runs."""
    out_dir = Path(out_dir)
    runs = load_runs(out_dir)
    if not runs:
        raise ValueError(f"{out_dir / RUNS_DIR} holds no finished runs yet; nothing to report")
    summary = summarize(runs)
    recs = recommendations(summary)
    base_path = out_dir / BASE_FILE
    base = json.loads(base_path.read_text(encoding="utf-8")) if base_path.exists() else None
    paths = {
        "results": atomic_write_json(out_dir / "results.json",
                                     {"base": base, "summary": summary, "recommendations": recs, "runs": runs}),
        "table": atomic_write_text(out_dir / "report.md", markdown(summary, recs, (base or {}).get("scores"))),
        "plot": scatter(summary, out_dir / "pareto.png"),
    }
    return paths
