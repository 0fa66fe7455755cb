"""``mmtune world export`` (write task data) and ``mmtune world tasks``. Pre-training the world's base
model trains and evaluates, so ``mmtune pretrain`` lives with the recipes (``recipes/commands.py``)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    w = subparsers.add_parser("world", help="the synthetic multimodal world")
    wsub = w.add_subparsers(dest="world_command", metavar="WORLD_COMMAND", required=True)
    e = wsub.add_parser("export", help="write a world task as LLaVA JSON + PNG images")
    e.add_argument("task", help="world task name, e.g. vqa, pope, refcoco (see `mmtune world tasks`)")
    e.add_argument("--split", default="train", choices=("train", "val", "test"))
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, help="output folder")
    e.set_defaults(func=_export)
    t = wsub.add_parser("tasks", help="list world tasks with their kind and chance level")
    t.set_defaults(func=_tasks)


def _export(args: argparse.Namespace) -> int:
    from mmtune.world.export import export_llava

    print(export_llava(args.task, args.split, args.n, args.out, seed=args.seed))
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from mmtune.world.tasks import WORLD_TASKS

    print(f"{'task':10s} {'seen':5s} {'kind':16s} {'chance':>6s}  description")
    for t in WORLD_TASKS.values():
        print(f"{t.name:10s} {str(t.seen):5s} {t.kind:16s} {t.chance:6.1f}  {t.description}")
    return 0
