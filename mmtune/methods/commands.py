"""``mmtune methods``: the anti-forgetting methods, their phase and arguments."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("methods", help="list anti-forgetting methods (replay, L2-SP, EWC, LwF, WiSE-FT, merging)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_methods)


def _methods(args: argparse.Namespace) -> int:
    from mmtune.methods.base import PHASES, list_methods

    entries = list_methods()
    if args.json:
        print(json.dumps([{"name": e.name, "phase": e.phase, "description": e.description,
                           "defaults": e.defaults(), "args": e.arg_help()} for e in entries], indent=2))
        return 0
    for phase, what in PHASES.items():
        print(f"{phase} ({what}):")
        for e in (e for e in entries if e.phase == phase):
            args_text = ", ".join(f"{k}={v}" for k, v in e.defaults().items())
            print(f"  {e.name}({args_text})  {e.description}")
            for k, h in e.arg_help().items():
                print(f"      {k}: {h}")
    print("\nUse them in a train config (methods: [replay(fraction=0.2), ewc(weight=100)]) "
          "or a bench row (full+ewc(weight=100)).")
    return 0
