"""``mmtune data validate``: list every bad record of a data file before a training run hits it."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect and check training data")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = data_sub.add_parser(
        "validate",
        help="check a data file: images (fully decoded), texts, placeholders, answers, lengths",
        description="Exit code 1 when invalid records exist (0 with --skip-invalid).",
    )
    p.add_argument("path", help="LLaVA JSON, messages JSONL, HF dataset dir or parquet file")
    p.add_argument("--preferences", action="store_true",
                   help="the records are preferences (prompt + chosen/rejected, or KTO completion + label): "
                        "each response is checked with its prompt, and a pair's two must differ")
    p.add_argument("--root", help="image folder that paths are relative to (default: the file's folder)")
    p.add_argument("--format", dest="fmt", help="reader name when the suffix does not tell")
    p.add_argument("--model", help="model dir whose processor measures tokenized length (with --max-length)")
    p.add_argument("--max-length", type=int, help="flag samples whose image tokens a cut at N would split")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images with more pixels than this (default 40,000,000; config: validation.max_pixels)")
    p.add_argument("--skip-invalid", action="store_true", help="report counts and exit 0: training would drop them")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    from mmtune.data.readers import read_records
    from mmtune.data.validate import DEFAULT_MAX_PIXELS, validate_samples

    if args.max_length is not None and not args.model:
        raise ValueError("--max-length needs --model DIR: lengths are measured with that model's processor")
    processor = None
    if args.model:
        from mmtune.models.loading import load_processor

        processor = load_processor(args.model)
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if args.preferences:
        from mmtune.data.preferences import check_preferences, read_preferences

        report = check_preferences(read_preferences(args.path, root=args.root, fmt=args.fmt), processor=processor,
                                   root=args.root, max_length=args.max_length, max_pixels=max_pixels)
    else:
        report = validate_samples(read_records(args.path, root=args.root, fmt=args.fmt), processor=processor,
                                  root=args.root, max_length=args.max_length, max_pixels=max_pixels)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        print(f"{args.path}: all {report.total} records are valid")
        if processor is None:
            print("(texts checked as UTF-8 only; pass --model DIR to encode them with the processor training uses)")
    else:
        print(report.table())
        print(f"\n{len(report.invalid_ids)} of {report.total} records are invalid")
    if report.ok:
        return 0
    if args.skip_invalid:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.counts().items()))
        if not args.json:
            print(f"--skip-invalid: training would drop them and keep {len(report.valid_samples)} ({counts})")
        return 0
    if not args.json:
        print("fix these records, or pass --skip-invalid to drop them")
    return 1
