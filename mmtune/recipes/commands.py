"""``mmtune train``, ``mmtune pretrain``, ``mmtune infer`` and ``mmtune export``: thin calls into the recipes."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mmtune.files import add_allow_pickle_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="supervised fine-tuning from a YAML config")
    train.add_argument("config", help="YAML file (see configs/sft_*.yaml)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, dotted: --set training.lr=1e-4 --set strategy='top(k=2)'")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    train.add_argument("--skip-invalid", action="store_true", help="drop invalid records instead of failing")
    add_allow_pickle_argument(train)
    train.add_argument("--debug", action="store_true", help="show tracebacks")
    train.set_defaults(func=_train)

    p = subparsers.add_parser("pretrain", help="pre-train (or reuse) the built-in world base model")
    p.add_argument("--preset", default="quick", choices=("quick", "full", "quick-cooc", "quick-icl"),
                   help="size and length of pre-training; quick-cooc: the quick recipe on the world variant whose "
                        "objects co-occur and whose captions are noisy (a base that hallucinates companions); "
                        "quick-icl: quick plus interleaved multi-image documents (a base that learns in context)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--projector", default="mlp", choices=("mlp", "resampler"),
                   help="world model projector: LLaVA's MLP, or learnable queries cross-attending to the patches")
    p.add_argument("--force", action="store_true", help="train again even if this base exists")
    p.add_argument("--eval-n", type=int, default=100, help="test samples per world task in the final table")
    p.set_defaults(func=_pretrain)

    infer = subparsers.add_parser("infer", help="answer one prompt about one image with a checkpoint")
    infer.add_argument("--model", required=True, help="tuned (mmtune) or plain transformers checkpoint dir")
    infer.add_argument("--image", help="image file; omit for a text-only prompt")
    infer.add_argument("--prompt", required=True)
    infer.add_argument("--max-new-tokens", type=int, default=32)
    add_allow_pickle_argument(infer)
    infer.add_argument("--debug", action="store_true", help="show tracebacks")
    infer.set_defaults(func=_infer)

    export = subparsers.add_parser("export", help="merge a tuned checkpoint into a plain transformers one")
    export.add_argument("--model", required=True, help="tuned checkpoint dir (e.g. runs/sft/final)")
    export.add_argument("--out", required=True, help="where to write the plain checkpoint")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_allow_pickle_argument(export)
    export.add_argument("--debug", action="store_true", help="show tracebacks")
    export.set_defaults(func=_export)


def _train(args: argparse.Namespace) -> int:
    from mmtune.recipes.sft import SFTConfig, run_sft

    return run_training_command(args, "train", SFTConfig, run_sft)


def run_training_command(args: argparse.Namespace, command: str, config_class: type, run: Any,
                         describe: Any = None) -> int:
    """The body of ``mmtune train`` / ``mmtune align``: load the config with ``--set`` and
    ``--skip-invalid``, run (resuming if asked), print the summary table and one JSON line
    (``describe(config)`` adds keys to it). Divergence is exit 1 with one sentence, not a traceback."""
    from mmtune.config import load_config
    from mmtune.recipes.divergence import TrainingDiverged

    overrides = list(args.overrides) + (["validation.skip_invalid=true"] if args.skip_invalid else [])
    config = load_config(config_class, args.config, overrides)
    try:
        result = run(config, resume=args.resume, allow_pickle=args.allow_pickle)
    except TrainingDiverged as e:  # not bad input (exit 2), but one sentence says what happened and what to do
        if args.debug:
            raise
        print(f"mmtune {command}: error: {e}", file=sys.stderr)
        return 1
    if result.losses:  # empty on the non-zero ranks of a distributed run
        print(result.summary.table())
        print(json.dumps({
            "final": str(result.final_dir),
            **(describe(config) if describe else {}),
            "steps": len(result.losses),
            "first_loss": result.losses[0],
            "last_loss": result.losses[-1],
            "train_seconds": round(result.train_seconds, 2),
            "peak_memory_mb": round(result.peak_memory_mb, 1),
        }))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from mmtune.eval.runner import evaluate, results_table
    from mmtune.eval.task import get_task
    from mmtune.models import load_model
    from mmtune.recipes.pretrain import ensure_base_model
    from mmtune.world.tasks import WORLD_TASKS

    path = ensure_base_model(args.preset, args.seed, force=args.force, projector=args.projector)
    print(f"base model: {path}")
    loaded = load_model(path)  # a transformers checkpoint (the resampler's classes register on import)
    # Seen tasks should be well above chance, downstream ones (never trained on) near it.
    tasks = [get_task(f"world_{t.name}", split="test", n=args.eval_n, seed=args.seed) for t in WORLD_TASKS.values()]
    results = evaluate(loaded.model, loaded.processor, tasks, batch_size=50, out_dir=path / "eval")
    print(results_table(results))
    return 0


def _infer(args: argparse.Namespace) -> int:
    from mmtune.recipes.infer import infer

    print(infer(args.model, args.image, args.prompt, max_new_tokens=args.max_new_tokens,
                allow_pickle=args.allow_pickle))
    return 0


def _export(args: argparse.Namespace) -> int:
    from mmtune.recipes.export import export

    print(export(args.model, args.out, overwrite=args.overwrite, allow_pickle=args.allow_pickle))
    return 0
