"""The bench's figure: per target, E vs F with 95% intervals and the Pareto frontier, and beside it a
heatmap of the seen-set deltas (strategy x seen set) that make up F."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmtune.bench.pareto import Point, pareto_front


def _scatter(ax, target: str, pts: list[Point]) -> None:
    front = pareto_front(pts)
    for p in pts:
        xerr = [[p.E - p.E_ci[0]], [p.E_ci[1] - p.E]] if p.E_ci else None
        yerr = [[p.F - p.F_ci[0]], [p.F_ci[1] - p.F]] if p.F_ci else None
        ax.errorbar(p.E, p.F, xerr=xerr, yerr=yerr, fmt="o", color="tab:gray", ecolor="0.75",
                    elinewidth=0.8, markersize=4)
        ax.annotate(p.name, (p.E, p.F), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.plot([p.E for p in front], [p.F for p in front], "o-", color="tab:red", label="Pareto frontier")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set(title=f"{target}: E vs F (bars: 95% intervals)", xlabel="E (specialization)",
           ylabel="F (stabilization; < 0 = forgetting)")
    ax.legend(fontsize=7, loc="lower left")


def _heatmap(ax, fig, target: str, rows: dict[str, dict[str, Any]]) -> None:
    """Colour: the delta on the common scale (comparable across sets); text: the raw delta."""
    names = sorted(rows, key=lambda n: -rows[n]["O"][0])
    seen = sorted(next(iter(rows.values()))["seen_deltas"])
    scaled = [[rows[n]["seen_scaled"][s] for s in seen] for n in names]
    limit = max([abs(v) for line in scaled for v in line] + [1.0])
    image = ax.imshow(scaled, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i, n in enumerate(names):
        for j, s in enumerate(seen):
            dark = abs(rows[n]["seen_scaled"][s]) > 0.6 * limit
            ax.text(j, i, f"{rows[n]['seen_deltas'][s]:+.1f}", ha="center", va="center", fontsize=6,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(seen)), seen, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(f"{target}: seen-set deltas (text raw, colour on F's scale)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)


def bench_figure(summary: dict[str, dict[str, dict[str, Any]]], points: dict[str, list[Point]],
                 path: str | Path) -> Path:
    """One row per target: the E-F scatter, then the seen-set heatmap; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the bench runs on servers and in tests
    import matplotlib.pyplot as plt

    targets = list(summary)
    height = max(4.5, 0.3 * max(len(rows) for rows in summary.values()) + 1.5)
    fig, axes = plt.subplots(len(targets), 2, figsize=(13, height * len(targets)), squeeze=False)
    for (left, right), target in zip(axes, targets):
        _scatter(left, target, points[target])
        _heatmap(right, fig, target, summary[target])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # atomic like every other output
    return path
