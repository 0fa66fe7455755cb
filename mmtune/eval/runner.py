"""Run tasks on a model: batched greedy generation, cached answers, resumable, results on disk.

Per task it writes ``<task>.samples.jsonl`` (one line per sample, as answers arrive;
``<task>.template<i>.samples.jsonl`` for other instruction templates), and for the
whole run ``results.json`` and ``results.md``; every file is written atomically or line by line.
"""
from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import ProcessorMixin

from mmtune.data.collate import GenerationCollator, render
from mmtune.eval.cache import AnswerCache, answer_key, exclusive_lock, model_fingerprint
from mmtune.eval.icl import DemonstrationPool, IclDraw, IclSettings, draw_summary
from mmtune.eval.metrics import sensitivity
from mmtune.eval.task import Prediction, Task, get_task
from mmtune.files import append_jsonl, atomic_write_json, atomic_write_text


def generate_answers(model: nn.Module, processor: ProcessorMixin, samples: Sequence, *, max_new_tokens: int,
                     do_sample: bool = False, temperature: float = 1.0, num_return_sequences: int = 1) -> list[str]:
    """Answers for one batch of prompt samples (left-padded so new tokens start at one column);
    with ``num_return_sequences`` k > 1 (sampling), k answers per sample, each sample's together."""
    batch = GenerationCollator(processor)(samples)
    inputs = batch.inputs.to(model.device)
    sampling = {"temperature": temperature} if do_sample else {}
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_beams=1,
            num_return_sequences=num_return_sequences,
            pad_token_id=processor.tokenizer.pad_token_id,
            **sampling,
        )
    new_tokens = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def _generate(model: nn.Module, processor: ProcessorMixin, task: Task, samples: Sequence) -> list[str]:
    settings = task.generation
    return generate_answers(model, processor, samples, max_new_tokens=settings.max_new_tokens,
                            do_sample=not settings.greedy)


def _sample_record(p: Prediction, prompt: str, cached: bool) -> dict[str, Any]:
    return {"id": p.sample.id, "prompt": prompt, "raw": p.raw, "parsed": p.parsed.answer,
            "rule": p.parsed.rule, "score": p.score, "cached": cached}


def run_task(
    model: nn.Module,
    processor: ProcessorMixin,
    task: Task,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    template: int = 0,
    progress: bool = True,
    model_fp: str | None = None,
    icl: IclDraw | None = None,
) -> dict[str, Any]:
    """Evaluate one task (k-shot for one draw with ``icl``); see ``evaluate``."""
    samples = [task.prompt_sample(s, template) for s in task.samples[:limit]]
    if icl is not None:
        samples = icl.compose_all(task, samples, template, model, processor)
    prompts = [render(processor, s.messages, add_generation_prompt=True, tools=s.meta.get("tools")) for s in samples]
    model_fp = model_fp or model_fingerprint(model)
    task_fp = task.fingerprint(template)
    cache = AnswerCache(cache_dir, model_fp, task_fp) if cache_dir is not None and task.generation.greedy else None
    keys = [answer_key(model_fp, task_fp, s.id, p, s.meta.get("demonstrations", ())) for s, p in zip(samples, prompts)]
    raws: dict[int, str] = {}
    if cache is not None:
        raws = {i: a for i, k in enumerate(keys) if (a := cache.get(k)) is not None}
    suffix = ("" if template == 0 else f".template{template}") + (icl.suffix if icl is not None else "")
    log = out_dir / f"{task.name}{suffix}.samples.jsonl" if out_dir is not None else None
    if log is not None:
        log.unlink(missing_ok=True)  # rewritten in full: cached answers first, then new ones

    def record(i: int, cached: bool) -> None:
        if log is not None:
            append_jsonl(log, _sample_record(task.judge(samples[i], raws[i]), prompts[i], cached))

    for i in sorted(raws):
        record(i, cached=True)
    # Sorting by prompt length keeps similar lengths together: less left padding per batch.
    todo = sorted((i for i in range(len(samples)) if i not in raws),
                  key=lambda i: len(processor.tokenizer(prompts[i])["input_ids"]))
    desc = task.name + (f" {icl.settings.shots}-shot draw {icl.draw}" if icl is not None else "")
    bar = tqdm(total=len(samples), initial=len(raws), desc=desc, disable=not progress, unit="sample")
    started = time.perf_counter()
    for start in range(0, len(todo), batch_size):
        idx = todo[start:start + batch_size]
        for i, raw in zip(idx, _generate(model, processor, task, [samples[i] for i in idx])):
            raws[i] = raw
            if cache is not None:
                cache.put(keys[i], raw, id=samples[i].id)
            record(i, cached=False)
        bar.update(len(idx))
    bar.close()
    predictions = [task.judge(s, raws[i]) for i, s in enumerate(samples)]
    scores = task.aggregate(predictions)
    return {
        "metric": task.metric,
        "score": scores.get(task.metric),
        "scores": scores,
        "chance": task.chance,
        "seen": task.seen,
        "reference": task.reference,
        "counts": {"samples": len(samples), "generated": len(todo), "cached": len(samples) - len(todo)},
        "unparsed": sum(p.parsed.answer is None for p in predictions),
        "parse_rules": dict(Counter(p.parsed.rule for p in predictions)),
        "template": task.templates[template],
        "generation_seconds": round(time.perf_counter() - started, 3),
    }


def evaluate(
    model: nn.Module,
    processor: ProcessorMixin,
    tasks: Sequence[Task | str],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    template: int = 0,
    icl: IclSettings | None = None,
    demonstrations: Mapping[str, DemonstrationPool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``model`` on ``tasks`` (Task objects or registered names); returns task -> result.

    A result holds ``scores`` (0-100), the headline ``score`` and its ``metric``, ``chance``,
    ``counts`` (samples / generated / cached), ``reference`` (whose scoring rules the task follows)
    and ``unparsed`` (answers the parser could not read: rule "unparsed", or e.g. "ambiguous").
    Greedy answers are cached in ``cache_dir`` (default ``out_dir/cache``), so a rerun after a
    crash only generates what is missing and scores the same.

    With ``icl`` asking for k > 0 shots, each task is also scored k-shot, once per draw, with
    demonstrations from ``demonstrations[task name]``; its result gains ``icl``: the settings, each
    draw's headline score and the mean and std over draws (see ``k_shot``).
    """
    out = Path(out_dir) if out_dir is not None else None
    cache = Path(cache_dir) if cache_dir is not None else (out / "cache" if out is not None else None)
    model_fp = model_fingerprint(model)
    results: dict[str, dict[str, Any]] = {}
    was_training = model.training
    model.eval()  # dropout off: greedy answers must be reproducible to be cached
    # Two evaluations into one folder take turns: interleaved, their per-sample files would mix.
    with (exclusive_lock(out / ".eval.lock", f"another evaluation is writing into {out}; waiting for it to finish")
          if out is not None else contextlib.nullcontext()):
        try:
            for t in tasks:
                task = get_task(t) if isinstance(t, str) else t
                run = functools.partial(run_task, model, processor, task, batch_size=batch_size, limit=limit,
                                        out_dir=out, cache_dir=cache, template=template, progress=progress,
                                        model_fp=model_fp)
                results[task.name] = run()
                if icl is not None and icl.shots:
                    results[task.name]["icl"] = k_shot(run, task, icl, demonstrations or {})
        finally:
            model.train(was_training)
        if out is not None:
            atomic_write_json(out / "results.json", {"model_fingerprint": model_fp, "tasks": results})
            atomic_write_text(out / "results.md", results_table(results))
    return results


def k_shot(run: Callable[..., dict[str, Any]], task: Task, settings: IclSettings,
           demonstrations: Mapping[str, DemonstrationPool]) -> dict[str, Any]:
    """``run`` (a bound ``run_task``) once per draw with k demonstrations; mean and std of the scores."""
    if task.name not in demonstrations:
        raise ValueError(f"task {task.name!r}: --shots {settings.shots} needs demonstrations from its training "
                         f"records; give them with --icl-train {task.name}=FILE")
    pool = demonstrations[task.name]
    draws = [run(icl=IclDraw(settings, pool, draw)) for draw in range(settings.draws)]
    scores = [d["score"] for d in draws]
    keep = ("score", "scores", "counts", "unparsed", "parse_rules", "generation_seconds")
    return {**settings.to_dict(), "pool": {"source": pool.source, "records": len(pool.records)},
            "metric": task.metric, "draw_scores": scores, **draw_summary(scores),
            "runs": [{"draw": i, **{k: d[k] for k in keep}} for i, d in enumerate(draws)]}


def template_sensitivity(model: nn.Module, processor: ProcessorMixin, task: Task, **kwargs: Any) -> dict[str, Any]:
    """The task's headline score under each of its instruction templates, and their sensitivity
    (std / mean, MultiInstruct); ``kwargs`` go to ``evaluate`` (answers are cached per template)."""
    scores = {t: evaluate(model, processor, [task], template=i, **kwargs)[task.name]["score"]
              for i, t in enumerate(task.templates)}
    return {"metric": task.metric, "scores_by_template": scores, "sensitivity": sensitivity(scores)}


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per task with its headline score, chance level and counts; with
    k-shot results, the k-shot mean ± std over draws beside the zero-shot score."""
    icl = next((r["icl"] for r in results.values() if "icl" in r), None)
    shot_head = f" {icl['shots']}-shot ({icl['select']}, {icl['order']}, {icl['draws']} draws) |" if icl else ""
    lines = [f"| task | metric | score |{shot_head} chance | samples | unparsed |",
             "|---|---|---:|" + ("---:|" if icl else "") + "---:|---:|---:|"]
    for name, r in results.items():
        chance = "" if r["chance"] is None else f"{r['chance']:.1f}"
        score = "" if r["score"] is None else f"{r['score']:.2f}"
        shots = f" {_mean_std(r['icl'])} |" if icl else ""
        lines.append(f"| {name} | {r['metric']} | {score} |{shots} {chance} | {r['counts']['samples']} | {r['unparsed']} |")
    return "\n".join(lines) + "\n"


def _mean_std(icl: dict[str, Any] | None) -> str:
    if not icl or icl["mean"] is None:
        return ""
    return f"{icl['mean']:.2f}" + ("" if icl["std"] is None else f" ± {icl['std']:.2f}")
