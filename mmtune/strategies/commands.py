"""``mmtune strategies`` (what can be tuned how) and ``mmtune inspect`` (a model's groups and sizes)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from mmtune.files import add_allow_pickle_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("strategies", help="list tuning strategies and their arguments")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_strategies)

    p = subparsers.add_parser("inspect", help="show a model's family, groups and parameters per group")
    p.add_argument(
        "model_dir", metavar="MODEL_DIR", help="local checkpoint directory (plain or mmtune-tuned)"
    )
    p.add_argument(
        "--strategy", metavar="SPEC", help="also show what SPEC would train, e.g. 'top(k=2)+projector'"
    )
    add_allow_pickle_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_inspect)


def strategy_rows() -> list[dict[str, Any]]:
    """One row per strategy: name, paradigm, description, arguments with defaults and help."""
    from mmtune.strategies.registry import get_strategy, list_strategies

    rows = []
    for info in list_strategies():
        entry = get_strategy(info.name)
        args = {
            f.name: {"default": _default(f), "help": f.metadata.get("help", "")}
            for f in dataclasses.fields(entry.config_cls)
        }
        rows.append(
            {"name": info.name, "paradigm": info.paradigm, "description": info.description, "args": args}
        )
    return rows


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def run_strategies(args: argparse.Namespace) -> int:
    from mmtune.strategies.spec import StrategySpec

    rows = strategy_rows()
    if args.json:
        print(json.dumps(rows, indent=2, default=list))
        return 0
    # Required arguments (no default) show as "?", e.g. layers(start=?, end=?).
    shown = [
        (
            str(
                StrategySpec(
                    r["name"],
                    {k: "?" if a["default"] is None else a["default"] for k, a in r["args"].items()},
                )
            ),
            r["paradigm"],
            r["description"],
        )
        for r in rows
    ]
    w0, w1 = max(len(s[0]) for s in shown), max(len(s[1]) for s in shown)
    print(f"{'strategy (defaults)':<{w0}}  {'paradigm':<{w1}}  description")
    for spec, paradigm, desc in shown:
        print(f"{spec:<{w0}}  {paradigm:<{w1}}  {desc}")
    print("\ncombine with '+', lists with '|': e.g. top(k=2)+projector, lora(r=16, groups=llm|projector)")
    return 0


def inspect_model(model_dir: str, strategy: str | None = None, allow_pickle: bool = False) -> dict[str, Any]:
    """Family, groups (module paths, parameter counts) and, with ``strategy``, what would train."""
    from mmtune.models.family import GROUPS
    from mmtune.models.generic import unwrap
    from mmtune.strategies.apply import apply_strategy
    from mmtune.strategies.checkpoint import load_tuned, read_mmtune_record
    from mmtune.strategies.registry import resolve
    from mmtune.strategies.summary import StrategySummary

    if strategy:
        resolve(strategy)  # a typo in the spec fails before the model is loaded
    loaded = load_tuned(model_dir, allow_pickle=allow_pickle)
    model, groups = loaded.model, loaded.groups
    summary = StrategySummary.of(model, groups, "(as loaded)")
    if strategy:
        model, summary = apply_strategy(model, strategy, groups)
    config = getattr(unwrap(model), "config", None)
    return {
        "model_dir": model_dir,
        "model_class": type(unwrap(model)).__name__,
        "model_type": getattr(config, "model_type", None),
        "family": groups.family.name,
        "num_layers": groups.num_layers,
        "groups": {
            g: {
                "path": groups.paths.get(g, ""),
                "params": summary.total.get(g, 0),
                "trainable": summary.trainable.get(g, 0),
            }
            for g in (*GROUPS, "other")
            if groups.paths.get(g) or summary.total.get(g)
        },
        "strategy": summary.to_dict() if strategy else None,
        "mmtune": read_mmtune_record(model_dir),
    }


def run_inspect(args: argparse.Namespace) -> int:
    report = inspect_model(args.model_dir, args.strategy, args.allow_pickle)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['model_dir']}: {report['model_class']} (model_type {report['model_type']}, family {report['family']}, "
        f"{report['num_layers']} decoder layers)"
    )
    if report["mmtune"]:
        print(
            f"tuned by mmtune with {report['mmtune']['strategy']} ({report['mmtune']['format']} checkpoint)"
        )
    rows = report["groups"]
    w = max(len(g) for g in rows)
    wp = max(len(r["path"]) for r in rows.values())
    print(f"{'group':<{w}}  {'module path':<{wp}}  {'params':>12}" + ("  trainable" if args.strategy else ""))
    for g, r in rows.items():
        print(
            f"{g:<{w}}  {r['path']:<{wp}}  {r['params']:>12,}"
            + (f"  {r['trainable']:>9,}" if args.strategy else "")
        )
    if args.strategy:
        print(
            f"strategy {report['strategy']['spec']}: {report['strategy']['trainable_params']:,} of "
            f"{report['strategy']['total_params']:,} parameters train"
        )
    return 0
