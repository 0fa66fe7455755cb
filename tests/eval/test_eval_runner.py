"""The runner on a tiny LLaVA: results files, caching, and resume after a crash midway."""
import json

import pytest
from PIL import Image

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.eval import GenerationSettings, Parsed, Task
from mmtune.eval.cache import model_fingerprint
from mmtune.eval.metrics import sensitivity
from mmtune.eval.runner import evaluate, template_sensitivity
from mmtune.files import read_jsonl
from mmtune.models.tiny import build_tiny


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llava", seed=0)


def _task(n: int = 10) -> Task:
    colors = ["red", "blue", "green"]
    samples = [
        Sample(f"s{i}", [user_turn("what color is it " * (i % 4 + 1)), assistant_turn(colors[i % 3])],
               [Image.new("RGB", (24, 24), colors[i % 3])], {"answer": colors[i % 3]})
        for i in range(n)
    ]
    # A score that depends on the raw text, so equal scores mean equal answers.
    return Task("toy", samples, score=lambda parsed, s: float(len(parsed.answer) % 2), metric="odd",
                chance=50.0, seen=True, parse=lambda raw, s: Parsed(raw, "raw"),
                generation=GenerationSettings(max_new_tokens=3))


class _CountingGenerate:
    """Wraps ``model.generate``: counts calls and optionally crashes on call number ``crash_at``."""

    def __init__(self, generate, crash_at: int | None = None):
        self.inner, self.calls, self.crash_at = generate, 0, crash_at

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        return self.inner(*args, **kwargs)


def test_results_files_and_cache(tiny, tmp_path, monkeypatch):
    model, processor = tiny
    task = _task()
    first = evaluate(model, processor, [task], batch_size=4, out_dir=tmp_path, progress=False)["toy"]
    assert first["counts"] == {"samples": 10, "generated": 10, "cached": 0}
    assert first["chance"] == 50.0 and first["unparsed"] == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tasks"]["toy"]["scores"] == first["scores"]
    assert "| toy | odd |" in (tmp_path / "results.md").read_text()
    rows = read_jsonl(tmp_path / "toy.samples.jsonl")
    assert sorted(r["id"] for r in rows) == [f"s{i}" for i in range(10)]
    assert all(r["prompt"].endswith("assistant\n") and r["rule"] == "raw" for r in rows)
    # Second run: everything comes from the cache, generate is never called.
    counter = _CountingGenerate(model.generate)
    monkeypatch.setattr(model, "generate", counter)
    again = evaluate(model, processor, [task], batch_size=4, out_dir=tmp_path, progress=False)["toy"]
    assert counter.calls == 0 and again["counts"]["cached"] == 10 and again["scores"] == first["scores"]
    assert len(read_jsonl(tmp_path / "toy.samples.jsonl")) == 10


def test_resume_after_crash_recomputes_nothing_finished(tiny, tmp_path, monkeypatch):
    model, processor = tiny
    reference = evaluate(model, processor, [_task()], batch_size=3, out_dir=tmp_path / "full", progress=False)
    crashing = _CountingGenerate(model.generate, crash_at=3)  # batches 1 and 2 (6 samples) finish, then a crash
    monkeypatch.setattr(model, "generate", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate(model, processor, [_task()], batch_size=3, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()
    counter = _CountingGenerate(crashing.inner)
    monkeypatch.setattr(model, "generate", counter)
    resumed = evaluate(model, processor, [_task()], batch_size=3, out_dir=tmp_path / "run", progress=False)
    # 4 samples were left: 2 batches of 3 and 1 -> exactly 2 generate calls, 6 answers from the cache.
    assert counter.calls == 2
    assert resumed["toy"]["counts"] == {"samples": 10, "generated": 4, "cached": 6}
    assert resumed["toy"]["scores"] == reference["toy"]["scores"]
    def answers(d):
        return {r["id"]: r["raw"] for r in read_jsonl(d / "toy.samples.jsonl")}
    assert answers(tmp_path / "run") == answers(tmp_path / "full")


def test_fingerprint_sees_weight_changes(tiny):
    model, _ = tiny
    before = model_fingerprint(model)
    layer = model.model.language_model.layers[-1].mlp.down_proj.weight
    original = layer.data.clone()
    try:
        layer.data.add_(0.01)
        assert model_fingerprint(model) != before
    finally:
        layer.data.copy_(original)
    assert model_fingerprint(model) == before


def test_template_sensitivity(tiny, tmp_path):
    model, processor = tiny
    task = _task(6)
    task.templates = ("{prompt}", "Question: {prompt}", "{prompt} Reply briefly.")
    out = template_sensitivity(model, processor, task, batch_size=6, cache_dir=tmp_path, progress=False)
    scores = list(out["scores_by_template"].values())
    assert list(out["scores_by_template"]) == list(task.templates) and out["metric"] == "odd"
    assert out["sensitivity"] == pytest.approx(sensitivity(scores), nan_ok=True)
    # Each template is its own cache entry: 3 templates x 6 samples.
    assert sum(len(read_jsonl(f)) for f in tmp_path.rglob("*.jsonl")) == 18
