"""The report re-renders from saved run records alone: table, recommendation, results, PNG."""
import json

import pytest

from mmtune.bench.report import summarize, write_report
from mmtune.files import atomic_write_json


def _run(target, row, seed, E, F, seen_deltas, params=1000):
    return {"run_id": f"{target}--{row}--s{seed}", "target": target, "row": row, "seed": seed,
            "kind": "tune", "E": E, "F": F, "O": E + F, "seen_deltas": seen_deltas,
            "trainable_params": params, "train_seconds": 2.0 + seed, "peak_memory_mb": 100.0}


RUNS = [
    _run("aerial", "full", 0, 30.0, -10.0, {"vqa": -12.0, "caption": -8.0}, 2_500_000),
    _run("aerial", "full", 1, 34.0, -12.0, {"vqa": -14.0, "caption": -10.0}, 2_500_000),
    _run("aerial", "lora", 0, 20.0, -1.0, {"vqa": -1.0, "caption": -1.0}, 12_000),
    _run("aerial", "lora", 1, 22.0, -3.0, {"vqa": -3.0, "caption": -3.0}, 12_000),
    _run("aerial", "last", 0, 10.0, -4.0, {"vqa": -4.0, "caption": -4.0}),
    _run("aerial", "last", 1, 10.0, -4.0, {"vqa": -4.0, "caption": -4.0}),
]


def test_summarize_mean_std_over_seeds():
    s = summarize(RUNS)["aerial"]
    assert s["full"]["E"] == [32.0, pytest.approx(2 ** 1.5)]  # deviations +-2 -> sqrt(8)
    assert s["full"]["F"][0] == -11.0
    assert s["lora"]["O"] == [19.0, 0.0]  # 19 and 19
    assert s["full"]["seen_deltas"] == {"caption": -9.0, "vqa": -13.0}
    assert s["full"]["train_seconds"] == 2.5
    assert s["full"]["seeds"] == [0, 1]


def test_write_report_from_runs_without_per_sample_scores(tmp_path):
    # Runs recorded before per-sample scores were kept (as these): intervals read n/a, with a note, and
    # rows are compared on their means.
    for r in RUNS:
        atomic_write_json(tmp_path / "runs" / f"{r['run_id']}.json", r)
    atomic_write_json(tmp_path / "base.json", {"scores": {"aerial": 50.0, "vqa": 71.25, "caption": 80.0}})
    paths = write_report(tmp_path)
    table = paths["table"].read_text()
    assert "Base: aerial zero-shot 50.0; seen before tuning: caption 80.0, vqa 71.2." in table
    # full O per seed 20, 22 -> 21 ± 1.4; lora 19 ± 0; last (dominated by lora) 6 ± 0
    assert ("| full * | +32.0 ± 2.8 [n/a] | -11.0 ± 1.4 [n/a] | +21.0 ± 1.4 [n/a] | -9.0 | -13.0 | 2.5M | 2.5 "
            "| 100 |") in table
    assert "| last | +10.0 ± 0.0 [n/a] | -4.0 ± 0.0 [n/a] | +6.0 ± 0.0 [n/a] |" in table
    assert table.index("| full *") < table.index("| lora *") < table.index("| last |")
    assert "**Recommendation for aerial: `full`**" in table
    assert "Note: intervals n/a for 3 of 3 rows" in table
    results = json.loads(paths["results"].read_text())
    assert results["recommendations"]["aerial"] == {"strategy": "full", "tied": [], "why": (
        "highest O (+21.0) among 2 non-dominated of 3; also the highest E (+32.0)")}
    assert results["summary"]["aerial"]["full"]["O_ci"] is None and results["notes"]
    assert results["scale"]["name"] == "full_range"
    assert len(results["runs"]) == 6
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_without_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path)
