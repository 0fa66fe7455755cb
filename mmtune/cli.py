"""The ``mmtune`` command. Each area contributes its subcommands from its own ``commands`` module;
every subcommand is a thin call into a recipe, runner or report function.

A ``commands`` module defines ``register(subparsers)`` which adds its parsers and sets
``func=callable(args) -> int | None`` on each of them. Imports of heavy libraries happen inside
the callables so ``mmtune --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import pickle
import sys

COMMAND_MODULES = (
    "mmtune.strategies.commands",  # strategies, inspect (groups + trainable params under a strategy)
    "mmtune.data.commands",        # data validate
    "mmtune.recipes.commands",     # train, pretrain, infer, export
    "mmtune.recipes.chat_commands",  # chat (interactive, streamed, about an image)
    "mmtune.recipes.align.commands",  # align (preference alignment: DPO family, KTO, mDPO, GRPO)
    "mmtune.recipes.prefs_commands",  # prefs build (preference pairs: injected, self-generated, corrupted)
    "mmtune.world.commands",       # world export, world tasks
    "mmtune.eval.commands",        # eval, tasks
    "mmtune.tools.commands",       # tools list, tools traces (tool-use SFT data)
    "mmtune.methods.commands",     # methods
    "mmtune.bench.commands",       # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtune",
        description="Tune multimodal LLMs for a task without losing what they know, and measure both.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise RuntimeError(f"mmtune is installed incompletely: {name} is missing ({e})") from e
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    except (ValueError, KeyError, LookupError, OSError, pickle.UnpicklingError) as e:
        # Errors raised for bad input carry a message naming the record/file/option at fault.
        if getattr(args, "debug", False):
            raise
        print(f"mmtune {args.command}: error: {_message(e)}", file=sys.stderr)
        return 2
    return int(code or 0)


def _message(e: BaseException) -> str:
    if isinstance(e, pickle.UnpicklingError):
        # torch's weights-only refusal spans many lines and does not name the file.
        return ("a pickle file holds objects beyond plain tensors and was refused (it could run code); "
                "pass --allow-pickle if you trust the checkpoint's files")
    return str(e.args[0] if isinstance(e, KeyError) and e.args else e)


if __name__ == "__main__":
    sys.exit(main())
