"""The bench's ``report.html``: what each row gained and lost, to look at rather than read.

One self-contained file beside report.md (inline CSS and JS, images as ``data:`` URIs; no server, no
network): per target the sortable table of E, F, O and seen-set deltas, a heatmap of those deltas,
each run's loss curve (inline SVG), and a few test samples with the base's answer and every row's
answer after tuning: the target samples the rows changed most, and per seen set the sample most
rows forgot. The E-F figure report.md links (pareto.png) is embedded as it is drawn.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmtune.bench.pareto import pareto_front
from mmtune.eval.html import (
    THUMBNAIL_PX,
    cell,
    esc,
    mark,
    page,
    png_data_uri,
    question_of,
    read_answers,
    reference_of,
    sortable_table,
    thumbnail,
)
from mmtune.files import atomic_write_text

TARGET_SAMPLES = 3  # target samples shown per target
CURVE_W, CURVE_H = 220, 80
HEAT_LIMIT = 30.0  # a delta of this many points or more takes the full colour


def _fmt(x: float | None, spec: str = "+.1f") -> str:
    return "-" if x is None else format(x, spec)


def heat(delta: float) -> str:
    """A cell background for a seen-set delta: red for forgetting, green for gains, white at 0."""
    share = min(abs(delta) / HEAT_LIMIT, 1.0)
    channel = int(255 - 150 * share)
    return f"rgb(255,{channel},{channel})" if delta < 0 else f"rgb({channel},255,{channel})"


def score_table(target: str, rows: dict[str, dict[str, Any]], points) -> str:
    """The target's rows: E, F, O with their intervals, seen-set deltas as a heatmap, costs; * = frontier."""
    front = {p.name for p in pareto_front(points)}
    seen = sorted(next(iter(rows.values()))["seen_deltas"])
    body = []
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["O"][0]):
        scores = "".join(cell(f"{r[k][0]:+.1f}<br><small>{_interval(r[k + '_ci'])}</small>", r[k][0]) for k in "EFO")
        deltas = "".join(f"<td data-v=\"{r['seen_deltas'][t]}\" style=\"background:{heat(r['seen_deltas'][t])}\">"
                         f"{r['seen_deltas'][t]:+.1f}</td>" for t in seen)
        body.append(f"<tr data-run=\"{esc(target)}/{esc(name)}\">{cell(esc(name) + (' *' if name in front else ''), name)}"
                    f"{scores}{deltas}{cell(short_count(r['trainable_params']), r['trainable_params'] or 0)}"
                    f"{cell(_fmt(r['train_seconds'], '.1f'), r['train_seconds'] or 0)}"
                    f"{cell(_fmt(r['peak_memory_mb'], '.0f'), r['peak_memory_mb'] or 0)}</tr>")
    headers = ["strategy", "E", "F", "O", *[f"Δ {t}" for t in seen], "trainable", "time (s)", "memory (MB)"]
    return sortable_table(headers, body, f" data-target=\"{esc(target)}\"")


def _interval(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def short_count(n: int | None) -> str:
    """A parameter count in few characters: 49.2K, 7.6M, 1.3B."""
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def run_losses(out_dir: Path, run: dict[str, Any]) -> list[float]:
    """A run's per-step training losses: recorded in its run JSON, else its work folder's losses.jsonl
    (benches from before runs kept them), else none."""
    if run.get("losses"):
        return [float(x) for x in run["losses"]]
    log = out_dir / "work" / run["run_id"] / "losses.jsonl"
    if log.is_file():
        return [float(json.loads(line)["loss"]) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return []


def loss_curve(label: str, losses: list[float], low: float, high: float) -> str:
    """An inline SVG of ``losses`` per step on the y range [low, high] shared by a target's runs."""
    if not losses:
        return f"<div class=\"curve\"><b>{esc(label)}</b><br><small>no losses recorded</small></div>"
    span = (high - low) or 1.0
    step_x = CURVE_W / max(len(losses) - 1, 1)
    xy = " ".join(f"{i * step_x:.1f},{CURVE_H - (v - low) / span * CURVE_H:.1f}" for i, v in enumerate(losses))
    return (f"<div class=\"curve\"><b>{esc(label)}</b><br><svg width=\"{CURVE_W}\" height=\"{CURVE_H}\" "
            f"viewBox=\"0 0 {CURVE_W} {CURVE_H}\" role=\"img\"><rect width=\"{CURVE_W}\" height=\"{CURVE_H}\" "
            f"fill=\"#fafafa\"/><polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" points=\"{xy}\"/></svg>"
            f"<br><small>{len(losses)} steps, loss {losses[0]:.2f} → {losses[-1]:.2f}</small></div>")


def loss_curves(out_dir: Path, target: str, runs: list[dict[str, Any]]) -> str:
    """Each run's loss curve for ``target``, on one y scale; rows that train nothing say where they come from."""
    curves = {r["run_id"]: run_losses(out_dir, r) for r in runs}
    values = [v for c in curves.values() for v in c]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    parts = []
    for r in runs:
        label = f"{r['row']} (seed {r['seed']})"
        if r.get("kind", "tune") != "tune":
            parts.append(f"<div class=\"curve\"><b>{esc(label)}</b><br><small>no training: {esc(r['kind'])} "
                         "of a finished run's weights</small></div>")
        else:
            parts.append(loss_curve(label, curves[r["run_id"]], low, high))
    scale = f"y from {low:.2f} to {high:.2f}, shared by the curves" if values else ""
    return f"<p class=\"note\">Training loss per optimizer step; {scale}.</p><div class=\"curves\">{''.join(parts)}</div>"


def _answers(out_dir: Path, run_id: str, task: str) -> dict[str, dict[str, Any]]:
    return read_answers(out_dir / "evals" / run_id / f"{task}.samples.jsonl")


def pick_samples(base: dict[str, dict[str, Any]], after: list[dict[str, dict[str, Any]]], forgetting: bool,
                 k: int) -> list[str]:
    """Ids of ``k`` samples to show: where most runs changed the base's score (gained, for the target),
    or where most runs lost a base-correct answer (``forgetting``, for a seen set); none changed = none."""
    def changed(sid: str) -> int:
        before = base[sid].get("score")
        scores = [a[sid].get("score") for a in after if sid in a]
        if before is None:
            return 0
        return sum(1 for s in scores if s is not None and (s < before if forgetting else s > before))
    counted = [(changed(sid), i, sid) for i, sid in enumerate(base)]
    return [sid for n, _, sid in sorted(counted, key=lambda c: (-c[0], c[1])) if n > 0][:k]


def sample_cards(out_dir: Path, task: str, label: str, runs: list[dict[str, Any]], ids: list[str],
                 samples: dict[str, Any]) -> list[str]:
    """One card per sample id: image, question, reference, the base's answer and each row's after tuning."""
    base = _answers(out_dir, "base", task)
    after = {r["row"]: _answers(out_dir, r["run_id"], task) for r in runs}
    cards = []
    for sid in ids:
        sample = samples.get(sid)
        question = question_of(sample) if sample is not None else base[sid].get("prompt", "")
        reference = reference_of(sample) if sample is not None else ""
        rows = "".join(f"<li>{esc(row)}: <code>{esc(a[sid].get('raw', ''))}</code> {mark(a[sid].get('score'))}</li>"
                       if sid in a else f"<li>{esc(row)}: not scored on this sample</li>" for row, a in after.items())
        cards.append(f"<div class=\"card\" data-sample=\"{esc(sid)}\">{thumbnail(sample)}<small>{esc(label)}</small><br>"
                     f"<b>{esc(question)}</b><br>reference: <code>{esc(reference)}</code><br>"
                     f"base: <code>{esc(base[sid].get('raw', ''))}</code> {mark(base[sid].get('score'))}<ul>{rows}</ul></div>")
    return cards


def predictions(out_dir: Path, target_ref: dict[str, Any], seen_refs: list[dict[str, Any]], runs: list[dict[str, Any]],
                task_samples: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """The target samples the rows changed most, then per seen set the sample most rows forgot."""
    first_seed = min(r["seed"] for r in runs)
    runs = [r for r in runs if r["seed"] == first_seed]
    cards = []
    for ref, forgetting, k in [(target_ref, False, TARGET_SAMPLES), *[(s, True, 1) for s in seen_refs]]:
        base = _answers(out_dir, "base", ref["task"])
        ids = pick_samples(base, [_answers(out_dir, r["run_id"], ref["task"]) for r in runs], forgetting, k) if base else []
        if ids:
            label = f"{ref['name']} ({'seen set, forgotten by most rows' if forgetting else 'target'})"
            cards += sample_cards(out_dir, ref["task"], label, runs, ids, task_samples(ref))
    if not cards:
        return ("<p class=\"note\">No sample to show: no test sample's score changed after tuning, or the answers "
                "(evals/RUN/TASK.samples.jsonl) were not kept.</p>")
    return (f"<p class=\"note\">Seed {first_seed}; ✓ / ✗ = the answer's score; images {THUMBNAIL_PX} px.</p>"
            f"<div class=\"cards\">{''.join(cards)}</div>")


def test_samples(config: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``ref -> {sample id: Sample}`` for a bench config's tasks, rebuilt as the bench built them (a world
    set drawn to n_test); a task that cannot be rebuilt here (records moved) shows no thumbnails."""
    built: dict[str, dict[str, Any]] = {}

    def samples(ref: dict[str, Any]) -> dict[str, Any]:
        if ref["name"] not in built:
            from mmtune.eval.task import get_task

            args = dict(ref.get("task_args") or {})
            if ref["task"].startswith("world_"):
                args.setdefault("n", config.get("n_test", 100))
            try:
                built[ref["name"]] = {s.id: s for s in get_task(ref["task"], **args).samples}
            except (KeyError, ValueError, OSError, TypeError):
                built[ref["name"]] = {}
        return built[ref["name"]]
    return samples


def bench_html(out_dir: str | Path, summary: dict[str, dict[str, Any]], recs: dict[str, dict[str, Any]],
               points: dict[str, list], runs: list[dict[str, Any]], base_scores: dict[str, float] | None,
               config: dict[str, Any], legend: str, recommendation: Callable[[str, dict[str, Any]], str],
               task_samples: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> str:
    """The whole page; ``task_samples(ref)`` gives a bench task's test samples by id, for thumbnails
    (default ``test_samples(config)``)."""
    out_dir = Path(out_dir)
    task_samples = task_samples or test_samples(config)
    refs = {r["name"]: r for r in [*config.get("targets", []), *config.get("seen", [])]}
    seen_refs = [refs[n] for n in sorted({n for rows in summary.values() for r in rows.values() for n in r["seen_deltas"]})
                 if n in refs]
    body = ["<h1>mmtune bench</h1>", f"<p class=\"note\">{esc(legend)}</p>"]
    figure = png_data_uri(out_dir / "pareto.png", max_px=None, colors=128)
    for target, rows in summary.items():
        body += [f"<h2 id=\"{esc(target)}\">{esc(target)}</h2>"]
        if base_scores and target in base_scores:
            seen = ", ".join(f"{t} {base_scores[t]:.1f}" for t in sorted(next(iter(rows.values()))["seen_deltas"])
                             if t in base_scores)
            body.append(f"<p>Base: {esc(target)} zero-shot {base_scores[target]:.1f}; seen before tuning: {esc(seen)}.</p>")
        body += [score_table(target, rows, points[target]),
                 f"<p>{_bold(esc(recommendation(target, recs[target])))}</p>",
                 "<h3>Loss curves</h3>", loss_curves(out_dir, target, [r for r in runs if r["target"] == target])]
        if target in refs:
            body += ["<h3>Answers before and after tuning</h3>",
                     predictions(out_dir, refs[target], seen_refs, [r for r in runs if r["target"] == target], task_samples)]
    if figure:
        body += ["<h2>E vs F per target, beside its seen-set deltas</h2>",
                 f"<img class=\"figure\" src=\"{figure}\" alt=\"E vs F per target\">"]
    return page("mmtune bench", "\n".join(body))


def _bold(text: str) -> str:
    """report.md's **bold** recommendation as HTML."""
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)).replace("`", "")


def write_html(out_dir: str | Path, *args: Any, **kwargs: Any) -> Path:
    """``out_dir/report.html`` (``bench_html``'s page), written atomically."""
    return atomic_write_text(Path(out_dir) / "report.html", bench_html(out_dir, *args, **kwargs))
