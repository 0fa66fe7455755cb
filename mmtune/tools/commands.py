"""``mmtune tools list`` (the registered vision tools and how to call them) and ``mmtune tools
traces`` (tool-use SFT data from the world, as LLaVA JSON + PNG for ``mmtune train``)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser("tools", help="vision tools for the tool-using loop (`mmtune eval --tools`)")
    tsub = t.add_subparsers(dest="tools_command", metavar="TOOLS_COMMAND", required=True)
    ls = tsub.add_parser("list", help="registered tools: name, DSL call, description")
    ls.add_argument("--tools-file", help="YAML of your own tools to register first (tools: [{function: pkg.mod:fn}])")
    ls.set_defaults(func=_list)
    tr = tsub.add_parser("traces", help="write tool-use conversations of world tasks as LLaVA JSON + PNG")
    tr.add_argument("--tasks", default="iconqa,refcoco", help="comma-separated world tasks with a tool planner")
    tr.add_argument("--split", default="train", choices=("train", "val", "test"))
    tr.add_argument("--n", type=int, default=1000, help="conversations per task")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", required=True, help="output folder (tools_<split>.json and images/)")
    tr.set_defaults(func=_traces)


def _list(args: argparse.Namespace) -> int:
    from mmtune.tools.registry import TOOLS, load_tool_file

    if args.tools_file:
        load_tool_file(args.tools_file)
    print("| tool | DSL call | description |\n|---|---|---|")
    for t in TOOLS.values():
        print(f"| {t.name} | `{t.surface()}` | {t.description} |")
    return 0


def _traces(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmtune.files import atomic_write_json
    from mmtune.tools.traces import tool_use_samples
    from mmtune.world.export import to_llava_record

    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        samples, dropped = tool_use_samples(task, args.split, args.n, args.seed)
        for s in samples:
            path = f"images/{s.id}.png"
            s.images[0].save(out / path)
            records.append(to_llava_record(s, [path]))
        print(f"{task}: {len(samples)} conversations" + (f", {dropped} left out (tool answer != reference)" if dropped else ""))
    print(atomic_write_json(out / f"tools_{args.split}.json", records))
    return 0
