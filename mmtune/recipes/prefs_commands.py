"""``mmtune prefs build``: make preference pairs, each recording how it was made in
``meta["construction"]`` (or ``meta["image_corruption"]``), written as a TRL vision preference JSONL.

- ``--method injected``: the correct response against the same response with a hallucination,
  on world scenes (``--task describe``) or on real images from COCO instance annotations
  (``--coco-instances``);
- ``--method self``: the model's own sampled answers, best against worst by a verifier;
- ``--method corrupt``: pairs of a preference file given a corrupted image for mDPO.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from mmtune.files import add_allow_pickle_argument

METHODS = ("injected", "self", "corrupt")


def register(subparsers: argparse._SubParsersAction) -> None:
    prefs = subparsers.add_parser("prefs", help="build preference data for alignment (mmtune align)")
    sub = prefs.add_subparsers(dest="prefs_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "build", help="make preference pairs: injected hallucinations, self-generated + verifier, corrupted images",
        description="Writes TRL's vision preference JSONL (images saved as PNG beside it); every pair records "
                    "how it was made in meta.",
    )
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", required=True, help="the preference JSONL to write")
    p.add_argument("--image-dir", help="where in-memory images are saved (default: <out stem>_images beside --out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=200, help="pairs (injected) or prompts (self) to draw")
    p.add_argument("--task", help="injected: world task describe|caption; self: eval task, e.g. world_describe")
    p.add_argument("--split", default="train", help="world split the scenes come from (train, val, test)")
    p.add_argument("--root", help="self: a benchmark task's data folder; corrupt: the input's image folder")
    p.add_argument("--world-variant", default="independent",
                   help="world whose scene statistics to draw from (e.g. cooc); references stay exact")
    g = p.add_argument_group("injected")
    g.add_argument("--kinds", default="object,attribute,count,position",
                   help="world hallucinations to inject, taking turns (comma-separated)")
    g.add_argument("--coco-instances", help="COCO instances_*.json: pairs on real images instead of the world")
    g.add_argument("--coco-captions", help="COCO captions_*.json: chosen = a reference caption "
                                           "(default: a sentence listing the annotated objects)")
    g.add_argument("--images", help="folder the COCO file names are relative to")
    g.add_argument("--sampling", default="adversarial", help="absent object by POPE's random|popular|adversarial")
    g.add_argument("--prompt", default="Describe the image in detail.", help="the prompt of COCO pairs")
    g = p.add_argument_group("self")
    g.add_argument("--model", help="checkpoint dir of the model being aligned")
    g.add_argument("--samples", type=int, default=4, help="answers sampled per prompt")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, help="default: the task's own")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    add_allow_pickle_argument(p)
    g = p.add_argument_group("corrupt")
    g.add_argument("--input", help="preference file whose pairs get a corrupted image")
    g.add_argument("--corruption", default="crop", help="crop (mDPO: 1-20%% of the area) | mask | noise")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=build_command)


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise ValueError(f"--method {args.method} needs {' and '.join(missing)}")


def build_command(args: argparse.Namespace) -> int:
    from mmtune.data.preferences import write_preferences

    out = Path(args.out)
    prefs = {"injected": _injected, "self": _self, "corrupt": _corrupt}[args.method](args)
    write_preferences(out, prefs, image_dir=args.image_dir)
    made = Counter(_kind(p.meta) for p in prefs)
    print(f"{out}: {len(prefs)} pairs ({', '.join(f'{k}: {n}' for k, n in sorted(made.items())) or 'none'})")
    if not prefs:
        print("no pairs were made: with --method self every prompt's answers tied (sample more with --samples, "
              "or raise --temperature); otherwise the input held no usable record")
    return 0 if prefs else 1


def _kind(meta: dict) -> str:
    if "image_corruption" in meta:
        return f"image {meta['image_corruption']['method']}"
    construction = meta.get("construction", {})
    injected = construction.get("injected") or [{}]
    return injected[0].get("type") or construction.get("method", "?")


def _world(args: argparse.Namespace):
    """The world whose scenes are drawn; its references are written exact (no caption noise)."""
    from mmtune.world.scenes import world_variant

    return world_variant(args.world_variant, noisy=False)


def _injected(args: argparse.Namespace) -> list:
    if args.coco_instances:
        from mmtune.data.inject import injected_pairs, read_coco_captions, read_coco_instances
        from mmtune.eval.metrics.hallucination import COCO_VOCABULARY

        _require(args, "images")
        captions = read_coco_captions(args.coco_captions) if args.coco_captions else None
        return injected_pairs(read_coco_instances(args.coco_instances), args.images, n=args.n, captions=captions,
                              sampling=args.sampling, prompt=args.prompt, synonyms=COCO_VOCABULARY.synonyms,
                              seed=args.seed)
    from mmtune.world.prefs import injected_pairs as world_pairs

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    with _world(args):
        return world_pairs(args.task or "describe", split=args.split, n=args.n, seed=args.seed, kinds=kinds)


def _self(args: argparse.Namespace) -> list:
    from mmtune.eval.metrics.grounding import box_format_for
    from mmtune.eval.task import TASKS, get_task
    from mmtune.recipes.prefs import SelfPairSettings, self_pairs
    from mmtune.strategies.checkpoint import load_tuned

    _require(args, "model", "task")
    settings = SelfPairSettings(n=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                batch_size=args.batch_size, seed=args.seed)
    loaded = load_tuned(args.model, allow_pickle=args.allow_pickle)
    box_format = box_format_for(loaded.groups.family.box_format, loaded.processor)
    options = TASKS.lookup(args.task).info.options
    wanted = {"root": args.root, "n": args.n, "split": args.split, "box_format": box_format,
              "variant": args.world_variant}
    task = get_task(args.task, **{k: v for k, v in wanted.items() if k in options and v is not None})
    return self_pairs(loaded.model, loaded.processor, task, settings, limit=args.n)


def _corrupt(args: argparse.Namespace) -> list:
    from mmtune.data.corrupt import corrupt_pairs
    from mmtune.data.preferences import read_preferences

    _require(args, "input")
    out = Path(args.out)
    prefs = read_preferences(args.input, root=args.root)
    return corrupt_pairs(prefs, out.parent / f"{out.stem}_corrupted", args.corruption, seed=args.seed,
                         relative_to=out.parent)
