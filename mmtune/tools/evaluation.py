"""Evaluate eval tasks with the tool loop on: each question goes through ``ToolLoop``, its answer
(or "" for a named failure) is judged by the task's own parser and metric, and the loop's counts
(answers, failures, calls per answer, invalid share, seconds per question) join the result.

Per task it writes ``<task>.tools.jsonl`` (every step: prompt, output, call, result, error,
answer or failure) and ``<task>.samples.jsonl``; for the run ``results.json``. A task is anything
with ``name``, ``samples``, ``prompt_sample``, ``judge``, ``aggregate`` and ``metric`` (the eval
``Task``), so this layer stays below eval.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from mmtune.files import append_jsonl, atomic_write_json
from mmtune.tools.loop import ToolLoop, summarize


def run_task_with_tools(loop: ToolLoop, task: Any, *, limit: int | None = None, batch_size: int = 16,
                        out_dir: Path | None = None, template: int = 0) -> dict[str, Any]:
    """One task through the loop; the result has the eval runner's keys plus ``tools``."""
    questions = [task.prompt_sample(s, template) for s in task.samples[:limit]]
    trace = samples_log = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        trace, samples_log = out_dir / f"{task.name}.tools.jsonl", out_dir / f"{task.name}.samples.jsonl"
        trace.unlink(missing_ok=True)
        samples_log.unlink(missing_ok=True)
    started = time.perf_counter()
    episodes = []
    for start in range(0, len(questions), batch_size):
        episodes += loop.run(questions[start:start + batch_size], trace)
    predictions = [task.judge(s, e.answer or "") for s, e in zip(questions, episodes)]
    if samples_log is not None:
        for p, e in zip(predictions, episodes):
            append_jsonl(samples_log, {"id": p.sample.id, "raw": e.answer or "", "failure": e.failure, "parsed": p.parsed.answer,
                                       "rule": p.parsed.rule, "score": p.score, "calls": e.calls, "invalid": e.invalid})
    scores = task.aggregate(predictions)
    return {
        "metric": task.metric,
        "score": scores.get(task.metric),
        "scores": scores,
        "chance": task.chance,
        "seen": task.seen,
        "reference": task.reference,
        "counts": {"samples": len(questions), "generated": len(questions), "cached": 0},
        "unparsed": sum(p.parsed.answer is None for p in predictions),
        "parse_rules": dict(Counter(p.parsed.rule for p in predictions)),
        "template": task.templates[template],
        "generation_seconds": round(time.perf_counter() - started, 3),
        "tools": {"mode": loop.mode, "format": loop.format.name, "refiner": loop.refiner,
                  "limits": loop.limits.__dict__, **summarize(episodes)},
    }


def evaluate_with_tools(loop: ToolLoop, tasks: list[Any], *, limit: int | None = None, batch_size: int = 16,
                        out_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Every task through the loop; ``results.json`` in ``out_dir`` when given."""
    out = Path(out_dir) if out_dir is not None else None
    results = {t.name: run_task_with_tools(loop, t, limit=limit, batch_size=batch_size, out_dir=out) for t in tasks}
    if out is not None:
        atomic_write_json(out / "results.json", {"tools": True, "tasks": results})
    return results
