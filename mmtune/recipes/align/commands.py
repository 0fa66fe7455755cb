"""``mmtune align CONFIG.yaml``: a thin call into ``mmtune.recipes.align.train.run_align``."""
from __future__ import annotations

import argparse
import json
import sys

from mmtune.files import add_allow_pickle_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    align = subparsers.add_parser(
        "align", help="preference alignment (dpo and its loss types, kto, mdpo, grpo) from a YAML config")
    align.add_argument("config", help="YAML file (see configs/align_*.yaml)")
    align.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, dotted: --set objective.beta=0.5 --set objective.loss_type=ipo")
    align.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    align.add_argument("--skip-invalid", action="store_true", help="drop invalid records instead of failing")
    add_allow_pickle_argument(align)
    align.add_argument("--debug", action="store_true", help="show tracebacks")
    align.set_defaults(func=_align)


def _align(args: argparse.Namespace) -> int:
    from mmtune.config import load_config
    from mmtune.recipes.align.config import AlignConfig
    from mmtune.recipes.align.train import run_align
    from mmtune.recipes.divergence import TrainingDiverged

    overrides = list(args.overrides) + (["validation.skip_invalid=true"] if args.skip_invalid else [])
    config = load_config(AlignConfig, args.config, overrides)
    try:
        result = run_align(config, resume=args.resume, allow_pickle=args.allow_pickle)
    except TrainingDiverged as e:  # not bad input (exit 2), but one sentence says what happened and what to do
        if args.debug:
            raise
        print(f"mmtune align: error: {e}", file=sys.stderr)
        return 1
    if result.losses:  # empty on the non-zero ranks of a distributed run
        print(result.summary.table())
        print(json.dumps({
            "final": str(result.final_dir),
            "method": config.objective.method,
            "steps": len(result.losses),
            "first_loss": result.losses[0],
            "last_loss": result.losses[-1],
            "train_seconds": round(result.train_seconds, 2),
        }))
    return 0
