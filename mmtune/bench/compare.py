"""Two bench outputs side by side (e.g. the MLP-projector base and the resampler base): per target one table
with both architectures' E, F, O and intervals, and the paper's findings with an architecture column."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmtune.bench.findings import RULE, Findings, decide, findings_table, verdict_counts
from mmtune.bench.report import bootstrap, read_bench, recommendations, score_cell, summarize
from mmtune.bench.uncertainty import RESAMPLES
from mmtune.files import atomic_write_json, atomic_write_text


def architecture(config: dict[str, Any], out_dir: Path) -> str:
    """What a bench tuned: its checkpoint folder's name, ``world-<interface>`` for the built-in base, else the
    output folder's name (a bench without config.json)."""
    if config.get("model"):
        return Path(config["model"]).name
    if config.get("world_projector"):
        return f"world-{config['world_projector']}"
    return out_dir.name


def _bench(out_dir: Path) -> dict[str, Any]:
    runs, base, config = read_bench(out_dir)
    resamples = int(config.get("bootstrap_resamples", RESAMPLES))
    summary = summarize(runs, base, resamples)
    return {"dir": str(out_dir), "architecture": architecture(config, out_dir), "summary": summary,
            "recommendations": recommendations(summary), "findings": decide(summary, bootstrap(runs, base, resamples))}


def _target_table(target: str, benches: list[dict[str, Any]]) -> list[str]:
    labels = [b["architecture"] for b in benches]
    rows = list(dict.fromkeys(r for b in benches for r in b["summary"].get(target, {})))
    lines = [f"## {target}", "", "| strategy | " + " | ".join(f"{s} ({a})" for a in labels for s in "EFO") + " |",
             "|---" * (1 + 3 * len(benches)) + "|"]
    for row in rows:
        cells = []
        for b in benches:
            r = b["summary"].get(target, {}).get(row)
            cells += ["-"] * 3 if r is None else [score_cell(r[s], len(r["seeds"]), r[f"{s}_ci"]) for s in "EFO"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    recs = [f"{b['architecture']}: `{b['recommendations'][target]['strategy']}`" for b in benches
            if target in b["recommendations"]]
    return lines + ["", "Recommended: " + "; ".join(recs) + ".", ""]


def compare(dir_a: str | Path, dir_b: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir``/compare.md and compare.json for two bench output folders."""
    benches = [_bench(Path(d)) for d in (dir_a, dir_b)]
    if benches[0]["architecture"] == benches[1]["architecture"]:  # one architecture twice: told apart by folder
        names = [Path(b["dir"]).name for b in benches]
        for b, name in zip(benches, names if names[0] != names[1] else [b["dir"] for b in benches]):
            b["architecture"] = name
    labels = [b["architecture"] for b in benches]
    found: list[Findings] = [b["findings"] for b in benches]
    lines = ["# mmtune bench: " + " vs ".join(labels), "",
             "Cells read mean ± std over seeds [95% percentile bootstrap interval over test samples, paired with the "
             "base]; each bench's own report.md has the seen-set deltas, costs and the legend.", ""]
    lines += [f"- {b['architecture']}: `{b['dir']}`" for b in benches] + [""]
    targets = list(dict.fromkeys(t for b in benches for t in b["summary"]))
    for target in targets:
        lines += _target_table(target, benches)
    lines += ["## The paper's findings, decided", "", RULE, ""] + findings_table(found, labels) + [""]
    lines += [f"{label}: {verdict_counts(f)}" for f, label in zip(found, labels)] + [""]
    lines += [f"Not tested ({label}): {m}." for f, label in zip(found, labels) for m in f.not_measured]
    data = {"benches": [{k: b[k] for k in ("dir", "architecture", "summary", "recommendations")} for b in benches],
            "rule": RULE,
            "findings": [{**d, "architecture": label} for f, label in zip(found, labels) for d in f.to_dict()["findings"]],
            "not_measured": {label: f.not_measured for f, label in zip(found, labels)}}
    out = Path(out_dir)
    return {"table": atomic_write_text(out / "compare.md", "\n".join(lines).rstrip() + "\n"),
            "results": atomic_write_json(out / "compare.json", data)}
