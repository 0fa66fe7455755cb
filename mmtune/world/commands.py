"""``mmtune pretrain`` (build the world base model) and ``mmtune world export`` (write task data)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="pre-train (or reuse) the built-in world base model")
    p.add_argument("--preset", default="quick", choices=("quick", "full"), help="size and length of pre-training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--projector", default="mlp", choices=("mlp", "resampler"),
                   help="world model projector: LLaVA's MLP, or learnable queries cross-attending to the patches")
    p.add_argument("--force", action="store_true", help="train again even if this base exists")
    p.add_argument("--eval-n", type=int, default=100, help="test samples per world task in the final table")
    p.set_defaults(func=_pretrain)

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


def _pretrain(args: argparse.Namespace) -> int:
    from mmtune.eval.runner import evaluate, results_table
    from mmtune.eval.task import get_task
    from mmtune.recipes.pretrain import ensure_base_model
    from mmtune.models import load_model
    from mmtune.world.tasks import WORLD_TASKS

    path = ensure_base_model(args.preset, args.seed, force=args.force, projector=args.projector)
    print(f"base model: {path}")
    loaded = load_model(path)  # a transformers checkpoint (the resampler's classes register on import)
    # Seen tasks should be well above chance, downstream ones (never trained on) near it.
    tasks = [get_task(f"world_{t.name}", split="test", n=args.eval_n, seed=args.seed) for t in WORLD_TASKS.values()]
    results = evaluate(loaded.model, loaded.processor, tasks, batch_size=50, out_dir=path / "eval")
    print(results_table(results))
    return 0


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
