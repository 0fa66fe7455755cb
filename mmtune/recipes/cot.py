"""Chain-of-thought tuning: rationale data variants, one-stage and two-stage (Multimodal-CoT) tuning,
and the pipeline's scores beside answer-only tuning at the same budget.

Variants of a record whose rationale is ``meta["rationale"]`` or written in its answer
("<rationale> So the answer is X."):
  - ``answer_only``: the record as it is (the direct answer);
  - ``one_stage``: one response, the rationale then the answer, to a prompt without its
    direct-answer instruction;
  - ``rationale_stage`` / ``answer_stage``: Multimodal-CoT's two models (Zhang et al. 2023); the
    first writes the rationale, the second answers with the rationale in its prompt (trained on
    the ground-truth rationale, evaluated on the first model's).

``run_cot`` trains a mode with ``train_sft`` on a world target and scores the target (accuracy,
rationale faithfulness, tokens per answer) and the seen sets before and after (F).
Run it as ``python -m mmtune.recipes.cot --target iconqa --mode one_stage --out runs/cot``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmtune.data.rationale import (
    WORLD_ONE_STAGE_ANSWER,
    answer_stage,
    one_stage,
    rationale_stage,
)
from mmtune.data.sample import Sample
from mmtune.eval.cot import cot_task, with_answer_costs
from mmtune.files import atomic_write_json
from mmtune.recipes.sft import FINAL_DIR, TrainingConfig, train_sft

MODES = ("answer_only", "one_stage", "two_stage")
SEEN = ("vqa", "gqa", "ocr", "mme", "pope")


# -- the recipe on the world ----------------------------------------------------------------------
@dataclasses.dataclass
class CotRun:
    """One CoT experiment on a world target: the mode, the budget, the sets scored."""

    base: str
    target: str
    mode: str
    out: str
    strategy: str = "lora"
    n_train: int = 1000
    n_test: int = 100
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(
        lr=2e-3, max_steps=160, batch_size=16, warmup_ratio=0.03, logging_steps=20, save_steps=0))
    seen: Sequence[str] = SEEN
    eval_batch_size: int = 50
    cache_dir: str | None = None  # answers cached across runs (default: <out>/cache)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CoT mode {self.mode!r} is unknown; use one of {', '.join(MODES)}")


def _evaluate(model, processor, tasks, out: Path, run: CotRun) -> dict[str, dict[str, Any]]:
    from mmtune.eval.runner import evaluate

    return evaluate(model, processor, tasks, batch_size=run.eval_batch_size, limit=run.n_test, out_dir=out,
                    cache_dir=Path(run.cache_dir or Path(run.out) / "cache"), progress=False)


def _seen_tasks(run: CotRun, tokenizer) -> list:
    from mmtune.eval.task import get_task

    return [with_answer_costs(get_task(f"world_{name}", n=run.n_test), tokenizer) for name in run.seen]


def _target_tasks(run: CotRun, tokenizer) -> tuple[Any, Any]:
    """The target as asked directly and as asked for a rationale (test samples with their scenes)."""
    from mmtune.eval.task import get_task
    from mmtune.world.rationale import with_rationale

    plain = get_task(f"world_{run.target}", n=run.n_test)
    plain = dataclasses.replace(plain, samples=[with_rationale(s) for s in plain.samples])
    return with_answer_costs(plain, tokenizer), cot_task(plain, trigger="", tokenizer=tokenizer)


def _train(run: CotRun, samples: list[Sample], name: str):
    """(model, processor, train seconds) of one stage; a stage finished with the same training
    settings and data size is loaded, not retrained, so a rerun only rescores."""
    from mmtune.strategies.checkpoint import load_tuned

    final = Path(run.out) / name / FINAL_DIR
    if (final / "mmtune.json").exists():
        meta = json.loads((final / "mmtune.json").read_text(encoding="utf-8"))["meta"]
        if meta["training"] == dataclasses.asdict(run.training) and meta["num_samples"] == len(samples):
            loaded = load_tuned(final)
            return loaded.model, loaded.processor, meta["train_seconds"]
    loaded = load_tuned(run.base)
    result = train_sft(loaded.model, loaded.processor, samples, strategy=run.strategy,
                       output_dir=Path(run.out) / name, training=run.training)
    return result.model, loaded.processor, result.train_seconds


def _headline(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keep = ("tokens_per_answer", "faithfulness", "rationale_rate", "statements_per_answer")
    return {name: {"score": r["score"], **{k: r["scores"][k] for k in keep if k in r["scores"]},
                   "parse_rules": r["parse_rules"]} for name, r in results.items()}


def forgetting(after: dict[str, float], before: dict[str, float]) -> float:
    """F: mean change of the seen sets' headline scores (all on 0-100; negative = forgetting)."""
    return sum(after[k] - before[k] for k in before) / len(before)


def run_cot(run: CotRun) -> dict[str, Any]:
    """Train ``run.mode`` from the base and score it; the base's scores are computed once per out."""
    from mmtune.strategies.checkpoint import load_tuned
    from mmtune.world.rationale import rationale_samples

    out = Path(run.out)
    base = load_tuned(run.base)
    tokenizer = base.processor.tokenizer
    seen = _seen_tasks(run, tokenizer)
    plain, cot = _target_tasks(run, tokenizer)
    before = _headline(_evaluate(base.model, base.processor, [*seen, plain, cot], out / "evals" / "base", run))
    train = rationale_samples(run.target, "train", run.n_train)
    record: dict[str, Any] = {"mode": run.mode, "target": run.target, "strategy": run.strategy,
                              "n_train": run.n_train, "n_test": run.n_test, "base": run.base,
                              "training": dataclasses.asdict(run.training), "before": before}
    seen_before = {t.name: before[t.name]["score"] for t in seen}
    if run.mode == "two_stage":
        first, processor, first_seconds = _train(run, [rationale_stage(s) for s in train], "rationale_model")
        second, _, second_seconds = _train(run, [answer_stage(s) for s in train], "answer_model")
        written = _evaluate(first, processor, [cot], out / "evals" / "rationale_model", run)
        rationales = _generated(out / "evals" / "rationale_model" / f"{cot.name}.samples.jsonl")
        staged = dataclasses.replace(plain, name=f"{plain.name}_two_stage", samples=[
            answer_stage(s, rationales[s.id]) for s in plain.samples[: run.n_test]])
        answered = _evaluate(second, processor, [staged, *seen], out / "evals" / "answer_model", run)
        after = _headline(answered)
        rationale_scores = _headline(written)[cot.name]
        target = {**after[staged.name], "faithfulness": rationale_scores.get("faithfulness"),
                  "tokens_per_answer": rationale_scores["tokens_per_answer"] + after[staged.name]["tokens_per_answer"]}
        seen_after = _headline(_evaluate(first, processor, seen, out / "evals" / "rationale_model_seen", run))
        record |= {"target": target, "after": after, "rationale_model_seen": seen_after,
                   "F_rationale_model": forgetting({k: seen_after[k]["score"] for k in seen_before}, seen_before),
                   "train_seconds": first_seconds + second_seconds}
        model_after = after
    else:
        samples = [one_stage(s, WORLD_ONE_STAGE_ANSWER) for s in train] if run.mode == "one_stage" else train
        tuned, processor, seconds = _train(run, samples, "model")
        model_after = _headline(_evaluate(tuned, processor, [*seen, plain, cot], out / "evals" / "model", run))
        record |= {"target": model_after[cot.name if run.mode == "one_stage" else plain.name], "after": model_after,
                   "train_seconds": seconds}
    seen_after = {k: model_after[k]["score"] for k in seen_before}
    record["F"] = forgetting(seen_after, seen_before)
    record["seen_before"], record["seen_after"] = seen_before, seen_after
    atomic_write_json(out / "result.json", record)
    return record


def _generated(path: Path) -> dict[str, str]:
    """Sample id -> the answer a model generated, from the runner's per-sample file."""
    return {row["id"]: row["raw"] for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def main(argv: Sequence[str] | None = None) -> int:
    from mmtune.recipes.pretrain import base_model_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default=None, help="base checkpoint (default: the cached quick world base)")
    p.add_argument("--target", required=True, help="world target with rationales: iconqa, sciqa, rsvqa, itm")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--out", required=True, help="folder for result.json, evals and the tuned weights")
    p.add_argument("--strategy", default="lora")
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--cache", help="answer cache shared by runs (default: <out>/cache)")
    args = p.parse_args(argv)
    run = CotRun(base=args.base or str(base_model_dir("quick")), target=args.target, mode=args.mode, out=args.out,
                 strategy=args.strategy, n_train=args.n_train, n_test=args.n_test, cache_dir=args.cache)
    run.training = dataclasses.replace(run.training, max_steps=args.steps)
    record = run_cot(run)
    print(json.dumps({k: record[k] for k in ("mode", "target", "F", "seen_after")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
