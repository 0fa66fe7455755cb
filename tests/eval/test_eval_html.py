"""mmtune eval's report.html: the score table and answers beside their images, self-contained, loaded
in headless Chromium without a console message."""
from __future__ import annotations

import json
import re

from mmtune.eval.html import eval_html, mark, write_eval_html
from mmtune.eval.task import get_task
from tests.headless_chromium import load, needs_chromium

SCORES = [1.0, 0.0, 0.5]


def _run(tmp_path):
    task = get_task("world_vqa", n=3)
    (tmp_path / "world_vqa.samples.jsonl").write_text("".join(
        json.dumps({"id": s.id, "prompt": "p", "raw": f"said{i}", "score": score}) + "\n"
        for i, (s, score) in enumerate(zip(task.samples, SCORES))))
    results = {"world_vqa": {"metric": "vqa_accuracy", "score": 50.0, "chance": 0.0, "counts": {"samples": 3},
                             "unparsed": 0}}
    return write_eval_html(results, [task], tmp_path), task


def test_marks_read_the_per_sample_score():
    assert [mark(1.0), mark(0.0), mark(0.5), mark(None)] == [
        '<span class="good">✓</span>', '<span class="bad">✗</span>', "0.50", ""]


def test_page_shows_scores_and_each_answer_with_its_image(tmp_path):
    page, task = _run(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert re.search(r'<tr data-task="world_vqa">.*?data-v="50.0">50.0</td>', text)
    assert len(re.findall(r'<img src="data:image/png;base64,', text)) == 3
    for i, sample in enumerate(task.samples):
        assert f"<code>said{i}</code>" in text and f"reference: <code>{sample.meta['answer']}</code>" in text
    assert not re.search(r'(src|href)="(?!data:)', text)


def test_tasks_without_answers_show_only_their_score(tmp_path):
    text = eval_html({"world_vqa": {"metric": "vqa_accuracy", "score": 1.0}}, [], tmp_path)
    assert "data-task=\"world_vqa\"" in text and "answers</h2>" not in text


@needs_chromium
def test_page_loads_in_chromium_without_console_messages(tmp_path):
    page, _ = _run(tmp_path)
    loaded = load(page)
    assert loaded.console == []
    assert 'data-sortable="ready"' in loaded.dom and loaded.dom.count('class="card"') == 3


def test_eval_command_with_out_writes_the_page(tmp_path, capsys):
    from mmtune.cli import main
    from mmtune.models.tiny import save_tiny

    checkpoint = save_tiny("llava", tmp_path / "tiny_llava")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(checkpoint), "--tasks", "world_sciqa", "--n", "2", "--batch-size", "2",
                 "--out", str(out), "--json"]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-task="world_sciqa"' in text and text.count('class="card"') == 2
