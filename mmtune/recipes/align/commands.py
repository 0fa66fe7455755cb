"""``mmtune align CONFIG.yaml``: a thin call into ``mmtune.recipes.align.train.run_align``."""
from __future__ import annotations

import argparse

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
    from mmtune.recipes.align.config import AlignConfig
    from mmtune.recipes.align.train import run_align
    from mmtune.recipes.commands import run_training_command

    return run_training_command(args, "align", AlignConfig, run_align,
                                describe=lambda config: {"method": config.objective.method})
