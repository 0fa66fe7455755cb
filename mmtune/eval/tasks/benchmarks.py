"""The real benchmarks as eval tasks: reader (released files under ``root=``) + kind + chance.

Prompts follow LLaVA-1.5's evaluation: short-answer sets get "Answer the question using a
single word or phrase."; MME questions carry their own "Please answer yes or no."

VQA answer rules (``metrics/vqa.py`` VQA_RULES) follow the evaluators behind published numbers:
VQAv2 lmms-eval's ``vqav2`` utils (the official normalization, applied to both sides every time;
the official script leaves unanimous answers and the prediction raw, so a raw "Two" scores 0
against ten "2"); TextVQA and OK-VQA the EvalAI answer processor on both sides (LLaVA's TextVQA
evaluator, lmms-eval's ``textvqa`` / ``ok_vqa``), as their human answers are raw strings.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmtune.data.sample import Sample
from mmtune.eval import loaders
from mmtune.eval.task import DEFAULT_TEMPLATE, Task, register_task
from mmtune.eval.tasks.kinds import SHORT_ANSWER_TEMPLATE, TASK_KINDS


@dataclass(frozen=True)
class Benchmark:
    name: str
    read: Callable[..., list[Sample]]
    kind: str
    chance: float | None  # None: depends on the samples (computed when the task is built)
    seen: bool
    description: str
    template: str = SHORT_ANSWER_TEMPLATE
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments for the kind (e.g. VQA rules)


BENCHMARKS = (
    Benchmark("vqav2", loaders.read_vqav2, "vqa", 0.0, True, "VQAv2 questions + annotations JSON, COCO images",
              options=(("rules", "lmms_eval_vqav2"),)),
    Benchmark("okvqa", loaders.read_okvqa, "vqa", 0.0, True, "OK-VQA (VQAv2 format), outside-knowledge questions",
              options=(("rules", "evalai"),)),
    Benchmark("textvqa", loaders.read_textvqa, "vqa", 0.0, True, "TextVQA_0.5.1 JSON, reading text in images",
              options=(("rules", "evalai"),)),
    Benchmark("gqa", loaders.read_gqa, "exact_match", 0.0, True, "GQA balanced questions JSON"),
    Benchmark("ocrvqa", loaders.read_ocrvqa, "exact_match", 0.0, True, "OCR-VQA dataset.json, book covers"),
    Benchmark("coco_caption", loaders.read_coco_captions, "caption", 0.0, True, "COCO captions_<split>.json, CIDEr-D",
              DEFAULT_TEMPLATE),
    Benchmark("mme", loaders.read_mme, "mme", 50.0, True, "MME category folders; perception + cognition scores",
              DEFAULT_TEMPLATE),
    Benchmark("pope", loaders.read_pope, "pope", 50.0, True, "POPE coco_pope_<split>.json object probes"),
    Benchmark("scienceqa", loaders.read_scienceqa, "multiple_choice", None, False,
              "ScienceQA problems.json + pid_splits.json, lettered choices", DEFAULT_TEMPLATE),
    Benchmark("refcoco", loaders.read_refcoco, "grounding", 0.0, False,
              "RefCOCO refs(unc) as JSON + instances.json, acc@0.5", DEFAULT_TEMPLATE),
)


def _chance(bench: Benchmark, samples: list[Sample]) -> float:
    if bench.chance is not None:
        return bench.chance
    # Multiple choice: a uniform guess over each question's options.
    return 100.0 * sum(1 / len(s.meta["choices"]) for s in samples) / len(samples) if samples else 0.0


def _factory(bench: Benchmark) -> Callable[..., Task]:
    def build(root: str, box_format: str = "norm1", **reader_kw: Any) -> Task:
        samples = bench.read(root, **reader_kw)
        kw: dict[str, Any] = dict(bench.options) | ({"box_format": box_format} if bench.kind == "grounding" else {})
        return TASK_KINDS[bench.kind].build(bench.name, samples, chance=_chance(bench, samples), seen=bench.seen,
                                            templates=(bench.template,), description=bench.description, **kw)

    return build


for _bench in BENCHMARKS:
    register_task(_bench.name, _factory(_bench), metric=TASK_KINDS.lookup(_bench.kind).metric, chance=_bench.chance,
                  seen=_bench.seen, description=_bench.description, needs_root=True)
