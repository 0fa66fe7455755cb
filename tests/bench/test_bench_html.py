"""report.html: one self-contained page with every run, its loss curve and answers before and after
tuning; loaded in headless Chromium with no console message, and a screenshot made."""
from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from mmtune.bench.html import heat, pick_samples
from mmtune.bench.report import write_report
from mmtune.eval.task import get_task
from mmtune.files import atomic_write_json
from tests.headless_chromium import load, needs_chromium, screenshot

N_TEST = 4
TARGET, SEEN = ("iconqa", "world_iconqa"), ("vqa", "world_vqa")
# per-sample scores on the 4 test samples: the base, then each trained row
TARGET_SCORES = {"base": [0, 1, 0, 0], "lora": [1, 1, 1, 0], "full": [1, 0, 0, 0]}
SEEN_SCORES = {"base": [1, 1, 0, 1], "lora": [1, 0, 0, 1], "full": [0, 0, 0, 1]}
LOSSES = {"lora": [2.0, 1.5, 1.2, 1.0], "full": [2.2, 1.0, 0.6]}


def _record(row, kind, seen_delta, losses=None):
    run = {"run_id": f"iconqa__{row}__seed0", "target": "iconqa", "row": row, "seed": 0, "kind": kind,
           "E": 25.0, "F": seen_delta, "O": 25.0 + seen_delta, "seen_deltas": {"vqa": seen_delta},
           "trainable_params": 1000, "train_seconds": 1.0, "peak_memory_mb": 10.0}
    return {**run, "losses": losses} if losses else run


def _answers(path, task, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": s.id, "prompt": "p", "raw": f"answer{i}{int(score)}", "score": float(score)})
                            + "\n" for i, (s, score) in enumerate(zip(task.samples, scores))))


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory):
    """A finished bench's folder as the runner leaves it: config, base scores, run records, answers."""
    out = tmp_path_factory.mktemp("bench")
    ref = {"task_args": {}, "root": "", "metric": "", "metric_range": 0.0}
    atomic_write_json(out / "config.json", {"n_test": N_TEST, "targets": [{"name": TARGET[0], "task": TARGET[1], **ref}],
                                            "seen": [{"name": SEEN[0], "task": SEEN[1], **ref}]})
    atomic_write_json(out / "base.json", {"scores": {"iconqa": 25.0, "vqa": 75.0}})
    records = [_record("lora", "tune", -25.0, LOSSES["lora"]), _record("full", "tune", -50.0, LOSSES["full"]),
               _record("full+wise_ft(alpha=0.5)", "wise_ft", -10.0)]
    for r in records:
        atomic_write_json(out / "runs" / f"{r['run_id']}.json", r)
    tasks = {name: get_task(task, n=N_TEST) for name, task in (TARGET, SEEN)}
    for run in ("base", "lora", "full"):
        rid = "base" if run == "base" else f"iconqa__{run}__seed0"
        _answers(out / "evals" / rid / f"{TARGET[1]}.samples.jsonl", tasks["iconqa"], TARGET_SCORES[run])
        _answers(out / "evals" / rid / f"{SEEN[1]}.samples.jsonl", tasks["vqa"], SEEN_SCORES[run])
    write_report(out)
    return out, tasks, records


def test_pick_samples_where_rows_changed_the_base_answer():
    def answers(scores):
        return {f"s{i}": {"score": float(s)} for i, s in enumerate(scores)}
    base, after = answers(TARGET_SCORES["base"]), [answers(TARGET_SCORES["lora"]), answers(TARGET_SCORES["full"])]
    # gains: s0 by both rows, s2 by lora; s1 and s3 by none
    assert pick_samples(base, after, forgetting=False, k=3) == ["s0", "s2"]
    seen = [answers(SEEN_SCORES["lora"]), answers(SEEN_SCORES["full"])]
    # forgotten: s1 by both rows, s0 by full only
    assert pick_samples(answers(SEEN_SCORES["base"]), seen, forgetting=True, k=1) == ["s1"]


def test_heat_is_red_for_forgetting_green_for_gains():
    assert heat(0.0) == "rgb(255,255,255)"
    assert heat(-30.0) == heat(-90.0) == "rgb(255,105,105)"  # 255 - 150: full colour from 30 points on
    assert heat(15.0) == "rgb(180,255,180)"


def test_page_is_self_contained_with_every_run_curve_and_answer(bench_out):
    out, tasks, records = bench_out
    text = (out / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'data-run="iconqa/([^"]+)"', text) == ["full+wise_ft(alpha=0.5)", "lora", "full"]  # by O
    assert not re.search(r'(src|href)="(?!data:|#)', text), "every image and link is inline"
    assert "<link" not in text and "@import" not in text
    polylines = re.findall(r'points="([^"]+)"', text)
    assert [len(p.split()) for p in polylines] == [3, 4]  # in run-id order: full's 3 steps, lora's 4
    # one y scale for the target's curves, 0.6 (full's last loss) to 2.2 (its first) over 80 px
    assert polylines[0].split() == ["0.0,0.0", "110.0,60.0", "220.0,80.0"]
    assert polylines[1].split()[0] == f"0.0,{80 - (2.0 - 0.6) / 1.6 * 80:.1f}"
    assert "no training: wise_ft" in text
    # target cards: the samples rows gained on (s0, s2); seen: the one both rows forgot (s1)
    shown = re.findall(r'data-sample="([^"]+)"', text)
    assert shown == [tasks["iconqa"].samples[0].id, tasks["iconqa"].samples[2].id, tasks["vqa"].samples[1].id]
    thumbnails = re.findall(r'<img src="data:image/png;base64,[^"]+" width="64"', text)
    assert len(thumbnails) == 3
    assert "answer21" in text and "base: <code>answer20</code>" in text  # sample 2: lora right, base wrong
    assert (out / "report.html").stat().st_size < 400_000


@needs_chromium
def test_page_loads_in_chromium_without_console_messages(bench_out, tmp_path):
    out, _, records = bench_out
    page = load(out / "report.html")
    assert page.console == []
    assert page.dom.count('data-sortable="ready"') == 1  # the sorting script ran over the table
    assert sorted(re.findall(r'data-run="iconqa/([^"]+)"', page.dom)) == sorted(r["row"] for r in records)
    shot = screenshot(out / "report.html", tmp_path / "report.png", height=1600)
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        assert len(image.convert("RGB").getcolors(1 << 20)) > 50  # drawn, not a blank page


@needs_chromium
def test_the_console_check_sees_a_script_error(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    assert any("undefinedFunction is not defined" in m for m in load(broken).console)
