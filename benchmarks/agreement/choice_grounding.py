"""Multiple-choice and grounding answer reading: mmtune vs VLMEvalKit's ``can_infer`` and lmms-eval's box parsers.

Run by hand, never by the tests. Fetch the references (any checkout; the commits used are named):

    git clone https://github.com/open-compass/VLMEvalKit      # vlmeval/utils/matching_util.py (e8e78f0)
    git clone https://github.com/EvolvingLMMs-Lab/lmms-eval   # lmms_eval/tasks/refcoco{_grounding,}/ (75571cf)
    python benchmarks/agreement/choice_grounding.py --vlmevalkit VLMEvalKit --lmms-eval lmms-eval \\
        [--n 3000] [--seed 0] [--show 5]

Draws ``--n`` randomized multiple-choice outputs (ScienceQA-style options, some of them single
letters, articles, pronouns, numbers or texts holding a capital letter; answers written the way
models write them: bare or marked-up letters, "The answer is: B", "B is correct.", option texts,
explanations that mention other options; and answers naming two options or none, whose right
reading is no letter), and ``--n`` grounding outputs (LLaVA [0, 1] lists, Qwen2-VL corner pairs
with and without box tokens, Qwen2.5-VL JSON in pixels, fenced or cut off at the token limit,
echoed expressions holding digits, refusals). Each output has a known intended reading, so both
readers are counted right / wrong / unparsed, beside the share of outputs they read the same.
Prints one JSON object; ``--show`` also prints the first outputs each reader gets wrong.

How the references are run: ``matching_util.py`` is loaded from its file with a stub for the one
import it takes from the rest of VLMEvalKit (``vlmeval.smp.log.get_logger``); lmms-eval's
``refcoco_grounding/utils.py`` likewise with a stub ``loguru``; ``refcoco/utils_rec.py`` as is.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import random
import sys
import types
from collections import Counter
from pathlib import Path

from mmtune.eval.metrics.choice import LETTERS, extract_choice
from mmtune.eval.metrics.grounding import find_box

OPTION_POOLS = [
    ["cat", "dog", "bird", "horse", "fish"], ["solid", "liquid", "gas"], ["weather", "climate"],
    ["Mercury", "Venus", "Earth", "Mars"], ["vitamin C", "vitamin D", "vitamin A", "iron"],
    ["I", "you", "we", "they"], ["a", "an", "the"], ["1", "2", "3", "4", "5"], ["10", "12", "20", "24"],
    ["North America", "South America", "Asia", "Africa"], ["B cells", "T cells", "red blood cells"],
    ["yes", "no"], ["sweet", "salty", "sour"], ["attract", "repel"], ["hot dog", "dog", "hot"],
    ["a fox", "a wolf", "a bear"], ["Type A", "Type B", "Type O"], ["increase", "decrease", "stay the same"],
    ["Florida", "Georgia", "Texas", "Ohio"], ["rough", "smooth", "soft", "hard"],
]
EXPLANATIONS = ["The image shows it clearly.", "Option {O} is wrong because it does not match the picture.",
                "{T2} does not fit here.", "This is because {T} is the best match.",
                "Unlike {T2}, it matches the description.", "A quick look at the picture confirms it."]
CHOICE_TEMPLATES = [  # {L} the intended letter, {l} lower case, {T} its text, {E} an explanation
    "{L}", "{L}.", "({L})", "{l}", "{l}.", "**{L}**", "[{L}]", "{L})", "Option {L}", "Option {L}.",
    "The answer is {L}.", "The answer is: {L}", "The answer is ({L}).", "Answer: {L}", "Answer: ({L}) {T}",
    "The correct option is {L}.", "The correct answer is **{L}**. Here's why: {E}", "{L} is correct.",
    "{L} is the correct answer.", "I think {L}", "I think the answer is {L}.", "{L}. {T}", "{L}) {T}",
    "({L}) {T}", "{L}: {T}", "{L}\n\nExplanation: {E}", "{L} - {T}", "My answer is {L}.", "{T}", "{T}.",
    "The answer is {T}.", "Answer: {T}", "It is {T}.", "I think it's {T}.", "The correct answer is {L}. {T}",
    "Based on the image, the answer is {L}.", "Based on the image, the answer is {T}.", "{L}. {T}\n{E}",
    "The answer is {L}. {E}", "**{L}. {T}**", "{L}.\n{E}",
]
NO_CHOICE_TEMPLATES = [  # two options named, or none: the right reading is no letter
    "Both {L} and {O}", "{L} or {O}", "Either {T} or {T2}.", "It could be {L} or {O}.", "{L}/{O}",
    "I'm not sure, maybe {L} or {O}.", "I cannot determine the answer from the image.",
    "Sorry, I can't help with that.", "None of the options.", "The image is too blurry to tell.",
    "The answer is {L}, or maybe {O}.", "{T} and {T2}",
]
EXPRESSIONS = ["guy 2nd from left", "man in number 23 jersey", "1st car on the right", "woman on the left",
               "the 3 o'clock plane", "bus 42", "left zebra", "person in 2 piece suit", "table", "the 4th sheep"]


def _options(rng: random.Random) -> list[str]:
    pool = rng.choice(OPTION_POOLS)
    return rng.sample(pool, rng.randint(2, min(5, len(pool))))


def choice_sample(rng: random.Random) -> tuple[str, list[str], str | None]:
    """(output, options, intended letter or None)."""
    options = _options(rng)
    i, j = rng.sample(range(len(options)), 2)
    slots = {"L": LETTERS[i], "l": LETTERS[i].lower(), "T": options[i], "O": LETTERS[j], "T2": options[j]}
    slots["E"] = rng.choice(EXPLANATIONS).format(**slots)
    if rng.random() < 0.15:
        return rng.choice(NO_CHOICE_TEMPLATES).format(**slots), options, None
    return rng.choice(CHOICE_TEMPLATES).format(**slots), options, LETTERS[i]


def box_sample(rng: random.Random) -> tuple[str, list[float] | None]:
    """(output, the four numbers the model meant or None)."""
    expr = rng.choice(EXPRESSIONS)
    style = rng.choice(["norm1", "norm1000", "norm1000_tokens", "json", "json_fenced", "json_cut", "pixel_list"])
    if rng.random() < 0.08:
        return rng.choice(["I cannot locate it.", "There is no such object in the image.", f"The {expr}."]), None
    if style == "norm1":
        a, b = sorted(round(rng.random(), 2) for _ in range(2))
        c, d = sorted(round(rng.random(), 2) for _ in range(2))
        box = [a, c, b, d]
        body = "[" + ", ".join(f"{v:.2f}" if rng.random() < 0.8 else f"{v:g}" for v in box) + "]"
        text = rng.choice(["{b}", "{b}.", "Object 1: {b}", "The {e} is at {b}.", "{e}: {b}"])
        return text.format(b=body, e=expr), box
    if style.startswith("norm1000"):
        box = [float(v) for v in (*sorted(rng.sample(range(1000), 2)), *sorted(rng.sample(range(1000), 2)))]
        box = [box[0], box[2], box[1], box[3]]
        pairs = f"({box[0]:.0f},{box[1]:.0f}),({box[2]:.0f},{box[3]:.0f})"
        if style.endswith("tokens"):
            return f"<|object_ref_start|>{expr}<|object_ref_end|><|box_start|>{pairs}<|box_end|>", box
        return rng.choice([f"{expr}{pairs}", f"{expr} {pairs}", pairs, f"The {expr} is at {pairs}."]), box
    w, h = rng.choice([(644, 476), (1148, 840), (504, 672), (1288, 728)])
    x = sorted(rng.sample(range(w), 2))
    y = sorted(rng.sample(range(h), 2))
    box = [float(x[0]), float(y[0]), float(x[1]), float(y[1])]
    nums = ", ".join(f"{v:.0f}" for v in box)
    if style == "pixel_list":
        return rng.choice([f"[{nums}]", f"The {expr}: [{nums}]"]), box
    obj = f'{{"bbox_2d": [{nums}], "label": "{expr}"}}'
    if style == "json":
        return f"[{obj}]", box
    fenced = f"```json\n[\n\t{obj}\n]\n```"
    if style == "json_fenced":
        return fenced, box
    # Cut off by the token limit somewhere after the box's closing bracket.
    return fenced[: rng.randint(fenced.index("]") + 1, len(fenced) - 1)], box


def load_references(vlmevalkit: Path, lmms_eval: Path):
    """can_infer, lmms-eval refcoco_grounding's box list and refcoco's first bracketed box, from their files."""
    stubs = {"vlmeval": types.ModuleType("vlmeval"), "vlmeval.smp": types.ModuleType("vlmeval.smp"),
             "vlmeval.smp.log": types.ModuleType("vlmeval.smp.log"), "loguru": types.ModuleType("loguru")}
    stubs["vlmeval.smp.log"].get_logger = logging.getLogger
    stubs["loguru"].logger = logging.getLogger("lmms-eval")
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)
    matching = _module_from(vlmevalkit / "vlmeval/utils/matching_util.py", "vlmevalkit_matching_util")
    grounding = _module_from(lmms_eval / "lmms_eval/tasks/refcoco_grounding/utils.py", "lmms_refcoco_grounding")
    rec = _module_from(lmms_eval / "lmms_eval/tasks/refcoco/utils_rec.py", "lmms_refcoco_rec")
    return matching.can_infer, grounding._parse_pred_boxes, rec.parse_float_sequence_within


def _module_from(path: Path, name: str):
    if not path.exists():
        raise SystemExit(f"{path} not found: pass the root of a checkout of the reference (see this file's docstring)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nonzero(box: list[float]) -> list[float] | None:
    """lmms-eval's ``parse_float_sequence_within`` answers [0, 0, 0, 0] when it finds no box."""
    return None if box == [0, 0, 0, 0] else [float(v) for v in box]


def _verdict(got, truth) -> str:
    if truth is None:
        return "right" if got is None else "wrong"
    return "unparsed" if got is None else "right" if got == truth else "wrong"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vlmevalkit", type=Path, required=True, help="root of a VLMEvalKit checkout")
    ap.add_argument("--lmms-eval", type=Path, required=True, help="root of an lmms-eval checkout")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many outputs each reader gets wrong")
    args = ap.parse_args()
    can_infer, lmms_boxes, lmms_first_bracketed = load_references(args.vlmevalkit, args.lmms_eval)
    rng = random.Random(args.seed)

    def reference_choice(text: str, options: list[str]) -> str | None:
        letter = can_infer(text, dict(zip(LETTERS, options)))  # a fresh dict: can_infer_text lower-cases it
        return letter if letter and letter != "Z" else None  # "Z": VLMEvalKit's "refused to answer"

    readers_mc = {"mmtune": lambda t, o: extract_choice(t, o)[0], "vlmevalkit_can_infer": reference_choice}
    readers_box = {
        "mmtune": lambda t: find_box(t)[0],
        "lmms_eval_refcoco_grounding": lambda t: (lmms_boxes(t) or [None])[0],
        "lmms_eval_refcoco_rec": lambda t: _nonzero(lmms_first_bracketed(t)),
    }
    report: dict = {"n": args.n, "seed": args.seed}
    shown: dict[str, list] = {}
    for kind, sample, readers in (("multiple_choice", choice_sample, readers_mc), ("grounding", box_sample, readers_box)):
        counts = {name: Counter() for name in readers}
        same = Counter()
        for _ in range(args.n):
            drawn = sample(rng)
            text, truth = drawn[0], drawn[-1]
            got = {name: read(*drawn[:-1]) for name, read in readers.items()}
            for name, value in got.items():
                verdict = _verdict(value, truth)
                counts[name][verdict if truth is not None else f"{verdict}_on_no_answer"] += 1
                if verdict == "wrong" and len(shown.setdefault(name, [])) < args.show:
                    shown[name].append({"output": text, "intended": truth, "read": value})
            for name in readers:
                if name != "mmtune":
                    same[name] += got[name] == got["mmtune"]
        report[kind] = {
            "counts": {name: {k: c[k] for k in ("right", "wrong", "unparsed", "right_on_no_answer",
                                                 "wrong_on_no_answer")} for name, c in counts.items()},
            "agreement_with_mmtune": {name: round(same[name] / args.n, 4) for name in same},
        }
    if args.show:
        report["wrong_examples"] = shown
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
