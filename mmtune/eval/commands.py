"""``mmtune eval`` (run tasks on a checkpoint, resumable) and ``mmtune tasks`` (what can be run)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmtune.files import add_allow_pickle_argument

# Wordings around a task's own instruction for --templates all when the user gives none: a prefix, a
# question frame and a request for brevity, the kinds of rewording MultiInstruct's sensitivity varies.
INSTRUCTION_WORDINGS = ("Question: {prompt}", "Look at the image and answer. {prompt}", "{prompt} Answer in a few words.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on tasks (batched, cached, resumable)")
    p.add_argument("--model", required=True, help="checkpoint dir: plain transformers or saved by mmtune")
    p.add_argument("--tasks", required=True, help="comma-separated task names (see `mmtune tasks`)")
    p.add_argument("--root", action="append", default=[], metavar="TASK=DIR",
                   help="data folder of a benchmark task, e.g. vqav2=/data/vqav2 (repeatable)")
    p.add_argument("--limit", type=int, help="evaluate only the first N samples of each task")
    p.add_argument("--n", type=int, default=200, help="samples per built-in world task")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", help="folder for results.json, results.md and per-sample JSONL")
    p.add_argument("--cache-dir", help="answer cache (default: <out>/cache, else $MMTUNE_HOME/eval_cache)")
    p.add_argument("--dtype", help="load the weights in this dtype (bf16, fp16, fp32)")
    add_allow_pickle_argument(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--cot", action="store_true",
                   help="chain of thought: ask for a rationale (direct-answer instructions dropped, --cot-trigger "
                        "appended), read the answer after it; scores add tokens per answer and, on world tasks, "
                        "rationale faithfulness")
    p.add_argument("--cot-trigger", default=None,
                   help="text appended to CoT prompts (default: \"Let's think step by step.\"; \"\" for none, "
                        "e.g. for a model tuned on rationales)")
    p.add_argument("--templates", default="first", choices=("first", "all"),
                   help="all: also score each task under other instruction wordings (its own templates and --template, "
                        "else mmtune's) and report the score per wording and the sensitivity (std / mean, MultiInstruct)")
    p.add_argument("--template", action="append", default=[], metavar="TEXT",
                   help="an instruction wording for --templates all, {prompt} where the question goes, e.g. "
                        "'Question: {prompt}' (repeatable)")
    p.add_argument("--report-to", default="none", metavar="TRACKERS",
                   help="also log the scores to these experiment trackers, comma-separated: tensorboard (event "
                        "files in <out>/runs), wandb, mlflow, trackio")
    p.add_argument("--no-card", action="store_true",
                   help="leave the model card (README.md) of an mmtune checkpoint as it is; by default its scores "
                        "section gains these scores")
    add_icl_arguments(p)
    add_tools_arguments(p)
    p.set_defaults(func=eval_command)

    t = subparsers.add_parser("tasks", help="list eval tasks with their metric and chance level")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=tasks_command)


def add_icl_arguments(p: argparse.ArgumentParser) -> None:
    """``--shots k`` and how its demonstrations are drawn (see ``mmtune.eval.icl``)."""
    g = p.add_argument_group("in-context learning (k-shot, scored beside the zero-shot score)")
    g.add_argument("--shots", type=int, default=0, help="demonstrations (image, question, answer) before each query")
    g.add_argument("--icl-select", default="random", choices=("random", "balanced", "nearest-image", "nearest-text"),
                   help="random (seeded), balanced over reference answers, or nearest to the query by the model's "
                        "pooled image features or by bag-of-words text similarity")
    g.add_argument("--icl-order", default="drawn", choices=("drawn", "permuted"),
                   help="demonstrations as selected (nearest: the nearest last) or shuffled per draw")
    g.add_argument("--icl-draws", type=int, default=1, help="draws with seeds 0..P-1; mean ± std are reported")
    g.add_argument("--icl-train", action="append", default=[], metavar="TASK=FILE",
                   help="training records to draw a task's demonstrations from (LLaVA JSON, messages JSONL, HF "
                        "dataset dir); world tasks use their train split (repeatable)")
    g.add_argument("--icl-pool", type=int, default=500, help="train-split records a world task draws demonstrations from")


def add_tools_arguments(p: argparse.ArgumentParser) -> None:
    """``--tools`` and the loop's settings (see ``mmtune.tools.loop``)."""
    g = p.add_argument_group("tool use (the model calls vision tools, see `mmtune tools list`)")
    g.add_argument("--tools", action="store_true",
                   help="answer through the tool loop; scores add calls per answer, invalid-call share, failures")
    g.add_argument("--tool-mode", default="decision", choices=("decision", "controller"),
                   help="decision: call, read, call again or answer; controller: plan every call, then answer")
    g.add_argument("--tool-refiner", default="model", choices=("model", "rules"),
                   help="model: the model answers from the results; rules: the last result (first box) is the answer")
    g.add_argument("--tool-format", default="auto", choices=("auto", "dsl", "json"),
                   help="auto: json tool calls where the chat template renders tools, else the DSL")
    g.add_argument("--tools-file", help="YAML of your own tools to register (tools: [{function: pkg.module:fn}])")
    g.add_argument("--max-calls", type=int, default=3, help="tool calls per question, valid or not")
    g.add_argument("--max-total-tokens", type=int, default=128, help="generated tokens per question, all steps")


def tools_eval(args: argparse.Namespace, loaded, tasks: list) -> dict:
    """The tasks through the tool loop, generating with the eval runner's batched generation."""
    from mmtune.eval.runner import generate_answers
    from mmtune.tools.calls import call_format_for
    from mmtune.tools.evaluation import evaluate_with_tools
    from mmtune.tools.loop import Limits, ToolLoop
    from mmtune.tools.registry import load_tool_file

    if args.cot or args.shots:
        raise ValueError("--tools runs the tool loop on zero-shot prompts; drop --cot / --shots")
    if args.tools_file:
        load_tool_file(args.tools_file)
    model, processor = loaded.model, loaded.processor
    limits = Limits(max_calls=args.max_calls, max_total_tokens=args.max_total_tokens)
    model.eval()
    loop = ToolLoop(lambda samples, n: generate_answers(model, processor, samples, max_new_tokens=n),
                    call_format_for(processor, args.tool_format), mode=args.tool_mode, refiner=args.tool_refiner,
                    limits=limits, count_tokens=lambda t: len(processor.tokenizer(t, add_special_tokens=False)["input_ids"]))
    return evaluate_with_tools(loop, tasks, limit=args.limit, batch_size=args.batch_size, out_dir=args.out)


def _pairs(pairs: list[str], option: str, form: str, example: str) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} {pair!r}: write it as {form}, e.g. {option} {example}")
        found[name] = value
    return found


def _roots(pairs: list[str]) -> dict[str, str]:
    return _pairs(pairs, "--root", "TASK=DIR", "vqav2=/data/vqav2")


def demonstration_pools(tasks: list, names: list[str], records: dict[str, str], *, pool_size: int,
                        box_format: str) -> dict:
    """Each task's demonstration pool: the records given for it, else its world train split."""
    from mmtune.data.readers import read_records
    from mmtune.eval.icl import DemonstrationPool
    from mmtune.eval.task import get_task, list_tasks

    unknown = sorted(set(records) - set(names))
    if unknown:
        raise ValueError(f"--icl-train given for {', '.join(unknown)}, which --tasks does not list")
    infos = {info.name: info for info in list_tasks()}
    pools = {}
    for name, task in zip(names, tasks):
        if name in records:
            pools[task.name] = DemonstrationPool(read_records(records[name]), records[name])
        elif "split" in infos[name].options:
            kwargs = {"split": "train", "n": pool_size, "box_format": box_format}
            train = get_task(name, **{k: v for k, v in kwargs.items() if k in infos[name].options})
            pools[task.name] = DemonstrationPool(train.samples, f"{name} train split ({pool_size} records)")
        else:
            raise ValueError(f"task {name!r} has no train split mmtune can draw demonstrations from: give its "
                             f"training records with --icl-train {name}=FILE (LLaVA JSON, messages JSONL, HF dataset dir)")
    return pools


def build_tasks(names: list[str], roots: dict[str, str], *, n: int, box_format: str) -> list:
    """Build each named task with the arguments its factory takes (data root, size, box format)."""
    from mmtune.eval.task import get_task, list_tasks

    infos = {info.name: info for info in list_tasks()}
    unknown_roots = sorted(set(roots) - set(names))
    if unknown_roots:
        raise ValueError(f"--root given for {', '.join(unknown_roots)}, which --tasks does not list")
    tasks = []
    for name in names:
        if name not in infos:
            raise KeyError(f"unknown eval task {name!r}; run `mmtune tasks` to list them")
        info = infos[name]
        wanted = {"root": roots.get(name), "n": n, "box_format": box_format}
        kwargs = {k: v for k, v in wanted.items() if k in info.options and v is not None}
        if info.needs_root and "root" not in kwargs:
            raise ValueError(f"task {name!r} reads its benchmark from disk: pass --root {name}=DIR")
        tasks.append(get_task(name, **kwargs))
    return tasks


def eval_command(args: argparse.Namespace) -> int:
    from mmtune.eval.runner import evaluate, results_table, template_sensitivity
    from mmtune.strategies.checkpoint import load_tuned
    from mmtune.tracking import check_report_to

    trackers = check_report_to(args.report_to.split(","), "--report-to")
    if trackers and not args.out:
        raise ValueError("--report-to needs --out: the trackers' local files go to <out>/runs")
    if args.templates == "all" and (args.tools or args.shots):
        raise ValueError("--templates all scores zero-shot prompts under each instruction template; drop --tools / --shots")
    loaded = load_tuned(args.model, dtype=args.dtype, allow_pickle=args.allow_pickle)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    from mmtune.eval.metrics.grounding import box_format_for

    box_format = box_format_for(loaded.groups.family.box_format, loaded.processor)
    tasks = build_tasks(names, _roots(args.root), n=args.n, box_format=box_format)
    if args.tools:
        results = tools_eval(args, loaded, tasks)
        print(json.dumps(results, indent=2) if args.json else results_table(results), end="" if not args.json else "\n")
        return 0
    if args.cot:
        from mmtune.eval.cot import ZERO_SHOT_TRIGGER, cot_task

        trigger = ZERO_SHOT_TRIGGER if args.cot_trigger is None else args.cot_trigger
        tasks = [cot_task(t, trigger=trigger, tokenizer=loaded.processor.tokenizer) for t in tasks]
    elif args.cot_trigger is not None:
        raise ValueError("--cot-trigger is used only with --cot; add --cot or drop it")
    from mmtune.eval.icl import IclSettings, check_multi_image

    icl = IclSettings(args.shots, args.icl_select, args.icl_order, args.icl_draws)
    family = loaded.groups.family
    check_multi_image(family.name, family.images_per_prompt, icl)
    pools = demonstration_pools(tasks, names, _pairs(args.icl_train, "--icl-train", "TASK=FILE", "vqav2=train.json"),
                                pool_size=args.icl_pool, box_format=box_format) if icl.shots else None
    from mmtune.files import mmtune_home

    cache = args.cache_dir or (None if args.out else mmtune_home() / "eval_cache")
    settings = dict(batch_size=args.batch_size, limit=args.limit, out_dir=args.out, cache_dir=cache, progress=not args.json)
    if args.template and args.templates != "all":
        raise ValueError("--template adds a wording for --templates all; add --templates all or drop it")
    by_template = ({t.name: template_sensitivity(loaded.model, loaded.processor, with_wordings(t, args.template), **settings)
                    for t in tasks} if args.templates == "all" else {})
    results = evaluate(loaded.model, loaded.processor, tasks, **settings, icl=icl, demonstrations=pools)
    for name, found in by_template.items():
        results[name]["templates"] = found
    table = results_table(results) + (templates_table(by_template) if by_template else "")
    if by_template and args.out:  # each template's evaluate rewrote the files; they end with every result
        add_to_results(Path(args.out), results, table)
    print(json.dumps(results, indent=2) if args.json else table, end="" if not args.json else "\n")
    if args.out:  # the page to look at: scores, and answers beside their images
        from mmtune.eval.html import write_eval_html

        write_eval_html(results, tasks, args.out)
    if args.out and not args.json:
        print(f"results: {Path(args.out) / 'results.json'}")
    if trackers:
        from mmtune.tracking import log_scores

        log_scores(trackers, tracked_scores(results), logging_dir=Path(args.out) / "runs",
                   run_name=Path(args.model).resolve().name)
    if not args.no_card:
        try:
            card = record_in_card(Path(args.model), results)
        except OSError as e:  # the scores are printed and saved; a read-only model folder only loses the card
            print(f"mmtune eval: the model card of {args.model} was not updated ({e}); pass --no-card to skip it",
                  file=sys.stderr)
        else:
            if card and not args.json:
                print(f"model card: {card}")
    return 0


def with_wordings(task, wordings: list[str]):
    """``task`` with the instruction wordings --templates all scores: its own templates, then ``wordings``
    (default ``INSTRUCTION_WORDINGS``); its first template stays first, so its usual score is one of them."""
    import dataclasses

    extra = tuple(w for w in (wordings or INSTRUCTION_WORDINGS) if w not in task.templates)
    try:
        return dataclasses.replace(task, templates=task.templates + extra)
    except ValueError as e:
        raise ValueError(f"--template: {e}") from e


def templates_table(by_template: dict[str, dict]) -> str:
    """Markdown: each task's score per instruction template, then its sensitivity (std / mean)."""
    lines = ["", "| task | instruction template | score |", "|---|---|---:|"]
    for name, found in by_template.items():
        lines += [f"| {name} | {template} | {score:.2f} |" for template, score in found["scores_by_template"].items()]
        lines.append(f"| {name} | **sensitivity** (std / mean over {len(found['scores_by_template'])} templates) "
                     f"| {found['sensitivity']:.4f} |")
    return "\n".join(lines) + "\n"


def add_to_results(out: Path, results: dict, table: str) -> None:
    """Rewrite ``results.json`` / ``results.md`` in ``out`` with ``results`` (keeping the model fingerprint)."""
    from mmtune.files import atomic_write_json, atomic_write_text

    written = json.loads((out / "results.json").read_text(encoding="utf-8"))
    atomic_write_json(out / "results.json", {**written, "tasks": results})
    atomic_write_text(out / "results.md", table)


def tracked_scores(results: dict) -> dict[str, float]:
    """The scores the trackers get: each task's headline score and, with --templates all, each
    template's score and the sensitivity."""
    scores = {}
    for name, r in results.items():
        if r["score"] is not None:
            scores[name] = r["score"]
        found = r.get("templates")
        if found:
            scores.update({f"{name}/template{i}": v for i, v in enumerate(found["scores_by_template"].values())})
            scores[f"{name}/sensitivity"] = found["sensitivity"]
    return scores


def record_in_card(model_dir: Path, results: dict) -> Path | None:
    """Add the scores to the model card of ``model_dir`` when mmtune wrote it (or wrote the checkpoint);
    a card from elsewhere (e.g. the Hub's) is left as it is. Returns the card's path, if written."""
    from mmtune.model_card import Score, add_scores, read_card

    if not model_dir.is_dir():
        return None
    metadata, _ = read_card(model_dir)
    if "mmtune" not in (metadata.get("tags") or []) and not (model_dir / "mmtune.json").is_file():
        return None
    scores = [Score(name, r["metric"], r["score"], "mmtune eval") for name, r in results.items() if r["score"] is not None]
    scores += [Score(name, "sensitivity", r["templates"]["sensitivity"], "mmtune eval --templates all")
               for name, r in results.items() if r.get("templates")]
    return add_scores(model_dir, scores)


def tasks_command(args: argparse.Namespace) -> int:
    from mmtune.eval.task import list_tasks

    infos = list_tasks()
    if args.json:
        print(json.dumps([info.__dict__ for info in infos], indent=2))
        return 0
    print("| task | metric | chance | seen | needs --root | description |")
    print("|---|---|---:|---|---|---|")
    for i in infos:
        chance = "per sample" if i.chance is None else f"{i.chance:.1f}"
        seen = "" if i.seen is None else ("seen" if i.seen else "downstream")
        print(f"| {i.name} | {i.metric} | {chance} | {seen} | {'yes' if i.needs_root else ''} | {i.description} |")
    return 0
