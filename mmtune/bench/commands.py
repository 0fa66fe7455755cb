"""``mmtune bench``: run the strategies x targets grid (or resume it), or re-render its report."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="which tuning strategy specializes best and forgets least (E, F, O per strategy and target)",
        description="Tune the base with every strategy row on every target, score the target (E) and the "
                    "seen sets before/after (F), and write results.json, report.md and pareto.png. "
                    "A rerun with the same --out resumes: finished runs are skipped.",
    )
    p.add_argument("--preset", choices=("quick", "full", "align"), default=None,
                   help="quick (default: ~2 targets, 1 seed, minutes on a CPU), full (more targets, steps, seeds) or "
                        "align (preference alignment of a base that hallucinates: SFT, DPO, IPO, KTO, mDPO, GRPO rows; "
                        "E = hallucination reduction, F = the alignment tax; see mmtune.bench.align)")
    p.add_argument("--config", default=None, help="YAML file of bench settings (see configs/bench_*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set n_train=32 --set training.max_steps=8")
    p.add_argument("--out", default=None, help="output folder (default: bench_out, or out_dir in the config)")
    p.add_argument("--strategies", default=None,
                   help="strategy rows separated by ';' (rows contain commas), e.g. 'full;lora(r=8);lora+replay(fraction=0.2)'")
    p.add_argument("--targets", default=None, help="comma-separated target task names, e.g. sciqa,rsvqa")
    p.add_argument("--projector", choices=("mlp", "resampler"), default=None,
                   help="the built-in base's interface (default mlp, LLaVA's MLP; resampler: learnable queries); "
                        "the same as --set world_projector=...")
    p.add_argument("--workers", default=None, metavar="N|auto",
                   help="runs at once, each in its own process (default 1: one after another); auto = one per "
                        "physical core on a CPU (one thread each), one per GPU on a GPU machine; the same scores "
                        "as one worker. The same as --set workers=...")
    p.add_argument("--executor", choices=("process", "dask"), default=None,
                   help="where the workers run: process (default: processes of this machine) or dask (a Dask "
                        "cluster: a local one of --workers processes, or the one at --scheduler, across machines; "
                        "needs pip install -e \".[dask]\"). The same as --set executor=...")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://host:8786 (with --executor dask; --out and "
                        "MMTUNE_HOME must be on a filesystem every worker sees). The same as --set scheduler=...")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="only re-render the report from DIR's finished runs (nothing is trained)")
    p.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"), default=None,
                   help="report two bench outputs side by side (e.g. --projector mlp and resampler benches): "
                        "compare.md and compare.json in --out (default bench_compare); nothing is trained")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from mmtune.bench.align import run_from_cli, wants_align
    from mmtune.bench.align_report import render_report

    if args.report:
        paths = render_report(args.report)
    elif args.compare:
        from mmtune.bench.compare import compare

        paths = compare(*args.compare, args.out or "bench_compare")
    elif wants_align(args.preset, args.config):
        paths = run_from_cli(args)
    else:
        from mmtune.bench.grid import load_bench_config
        from mmtune.bench.runner import run_bench

        overrides = list(args.overrides)
        if args.out:
            overrides.append(f"out_dir={args.out}")
        if args.targets:
            overrides.append(f"targets={args.targets}")
        if args.workers:
            overrides.append(f"workers={args.workers}")
        if args.executor:
            overrides.append(f"executor={args.executor}")
        if args.scheduler:
            overrides.append(f"scheduler={args.scheduler}")
        if args.projector:
            overrides.append(f"world_projector={args.projector}")
        config = load_bench_config(args.config, overrides, preset=args.preset)
        if args.strategies:
            # Rows contain commas (``lora(r=8, alpha=16)``), so the list is split on ';' and set directly.
            config.strategies = [s.strip() for s in args.strategies.split(";") if s.strip()]
            config.rows()
        paths = run_bench(config)
    for what, path in paths.items():
        print(f"{what}: {path}")
    print(paths["table"].read_text(encoding="utf-8"))
    return 0
