"""CHAIR agreement: mmtune's object mentions and CHAIR vs the reference ``chair.py``.

Run by hand, never by the tests. The reference needs NLTK (``pip install nltk``, into any
environment) and two checkouts (the commits used are named):

    git clone https://github.com/LisaAnne/Hallucination   # 6e4d33c "Update README.md"
    git clone https://github.com/clips/pattern            # d25511f, pattern/text/en/inflect.py
    python benchmarks/agreement/chair.py --hallucination Hallucination --pattern pattern \\
        [--n 2000] [--seed 0] [--show 5]
    python benchmarks/agreement/chair.py --hallucination Hallucination --pattern pattern --captions FILE.json

Draws ``--n`` descriptions written the way models and annotators write them (plurals, capitals,
punctuation, synonyms, two-word names, "baby"/"passenger" phrases, toilet seats, negations, filler
words, hyphenated and possessive words), each with a random set of objects in its image, scores them
with mmtune and with the reference's ``CHAIR.compute_chair``, and prints one JSON object: the share of
descriptions whose object mentions are the same (as multisets of canonical names), CHAIR_s and
CHAIR_i under each, and the differing descriptions by kind. ``--captions`` instead reads a JSON list
of ``{"caption": ..., "objects": [...]}`` and prints the reference's mentions and CHAIR for each
(how the golden values of tests/eval/test_metric_hallucination.py were made).

How the reference is run: ``utils/chair.py`` is Python 2 (only its ``print`` statements need changing,
done on load); ``pattern.en.singularize`` is taken from pattern's ``inflect.py`` with a stub for the
verb tables it imports at module level; ``misc`` (its plotting helpers) is stubbed. NLTK's
``word_tokenize`` splits sentences with the Punkt ``english`` model when NLTK's data has it, else
with an untrained ``PunktSentenceTokenizer`` (the JSON says which); the two differ only after
abbreviations ("Mr.", "St."), which the drawn descriptions do not contain. The reference's image
objects come from COCO annotation files; here each description's object set is given directly, as
its ``imid_to_objects``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import sys
import tempfile
import types
from collections import Counter
from pathlib import Path

from mmtune.eval.metrics.hallucination import COCO_VOCABULARY, chair, extract_objects

# ---------------------------------------------------------------- reference loading

def _sentence_splitter() -> tuple[object, str]:
    import nltk
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return PunktTokenizer("english"), "punkt_tab english"
    except LookupError:
        return PunktSentenceTokenizer(), "untrained PunktSentenceTokenizer (no NLTK punkt data here)"


def load_reference(hallucination: Path, pattern: Path) -> tuple[type, str]:
    """The reference's ``CHAIR`` class and the name of the sentence splitter its tokenizer uses."""
    import nltk.tokenize

    splitter, splitter_name = _sentence_splitter()
    nltk.tokenize.sent_tokenize = lambda text, language="english": splitter.tokenize(text)

    text_stub = types.ModuleType("pattern.text")  # what inflect.py imports at module level
    text_stub.__dict__.update(dict.fromkeys(["INFINITIVE", "PRESENT", "PAST", "FUTURE", "FIRST", "SECOND", "THIRD",
                                             "SINGULAR", "PLURAL", "SG", "PL", "PROGRESSIVE", "PARTICIPLE"]))
    text_stub.Verbs = type("Verbs", (), {"__init__": lambda self, *a, **k: None, "conjugate": None, "lemma": None,
                                         "lexeme": None, "tenses": None})
    sys.modules.update({"pattern": types.ModuleType("pattern"), "pattern.text": text_stub})
    spec = importlib.util.spec_from_file_location("pattern.en", pattern / "pattern/text/en/inflect.py")
    inflect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inflect)
    sys.modules["pattern.en"] = inflect
    misc = types.ModuleType("misc")
    misc.os = os
    sys.modules["misc"] = misc

    source = (hallucination / "utils/chair.py").read_text()
    source = re.sub(r"^(\s*)print (.+)$", r"\1print(\2)", source, flags=re.M)
    module = types.ModuleType("reference_chair")
    exec(compile(source, str(hallucination / "utils/chair.py"), "exec"), module.__dict__)
    return module.CHAIR, splitter_name


def reference_chair(CHAIR: type, hallucination: Path, records: list[dict]) -> dict:
    """The reference's per-description mentions and overall CHAIR_s, CHAIR_i (0-1) for
    ``records`` [{"caption", "objects"}], run through ``CHAIR.compute_chair`` on a caption file."""
    metrics = dict.fromkeys(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "CIDEr", "SPICE", "ROUGE_L"], 0.0)
    caps = {str(i): {"image_id": i, "caption": r["caption"], **metrics} for i, r in enumerate(records)}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        cap_file = Path(tmp) / "captions.json"
        cap_file.write_text(json.dumps({"overall": metrics, "imgToEval": caps}))
        os.chdir(hallucination)  # CHAIR reads data/synonyms.txt from the working directory
        try:
            evaluator = CHAIR(list(range(len(records))), None)
            evaluator.imid_to_objects = {i: set(r["objects"]) for i, r in enumerate(records)}
            out = evaluator.compute_chair(str(cap_file))
        finally:
            os.chdir(here)
    by_id = {s["image_id"]: s for s in out["sentences"]}
    return {"mentions": [by_id[i]["mscoco_generated_words"] for i in range(len(records))],
            "chair_s": out["overall_metrics"]["CHAIRs"], "chair_i": out["overall_metrics"]["CHAIRi"]}


# ---------------------------------------------------------------- drawn descriptions

SUBJECTS = ["man", "woman", "person", "people", "young boy", "little girl", "baby", "skier", "cowboy", "chef", "player"]
NAMES = ["dog", "dogs", "puppy", "cat", "kitten", "horse", "pony", "cow", "cattle", "sheep", "lamb", "elephant", "bear",
         "zebra", "giraffes", "bird", "pigeons", "car", "cars", "truck", "bus", "buses", "train", "boat", "airplane",
         "plane", "bicycle", "bikes", "motorcycle", "umbrella", "umbrellas", "bench", "chair", "chairs", "couch", "sofa",
         "table", "desk", "dining table", "laptop", "computer", "keyboard", "mouse", "phone", "cell phone", "tv",
         "television", "clock", "vase", "book", "books", "cup", "bottle", "wine glass", "wine glasses", "fork",
         "knife", "knives", "spoon", "bowl", "pizza", "sandwich", "hot dog", "hot dogs", "donut", "doughnuts", "cake",
         "banana", "bananas", "apple", "orange", "broccoli", "carrots", "teddy bear", "teddy bears", "kite",
         "frisbee", "skateboard", "surfboard", "skis", "snowboard", "tennis racket", "baseball bat", "sports ball",
         "ball", "traffic light", "stop sign", "fire hydrant", "parking meter", "backpack", "handbag", "suitcase",
         "tie", "bow tie", "toilet", "sink", "refrigerator", "fridge", "oven", "microwave", "toaster", "bed",
         "potted plant", "scissors", "toothbrush", "hair drier", "baby elephant", "adult giraffe", "passenger train",
         "train track", "home plate", "children", "men", "women", "mice", "geese", "oxen", "sheep", "ponies",
         "policemen", "skateboarders", "toilet seats", "bow ties", "ties", "doggies", "motor bike", "cheesecake",
         "stove top oven", "iPhone", "minibus", "taxies"]
FILLER = ["grass", "tree", "trees", "building", "street", "sky", "water", "field", "room", "kitchen", "wall", "window",
          "road", "snow", "beach", "light", "table top", "glass", "plate", "box", "sign", "pole", "fence"]
TEMPLATES = [
    "A {s} standing next to a {a}.", "There is a {a} and a {b} in the image.", "{S} holding a {a} near the {f}.",
    "Two {a} on the {f}, and no {b}.", "The image shows a {a}, a {b}, and some {f}.", "A {a}? Maybe a {b}!",
    "In this picture, a {s} is sitting on a {a} with a {b}; behind them is a {f}.",
    "A close-up of a {a}. There is no {b} visible. The {f} is blurry.", "{A} and {b} by the {f}",
    "a {a}-shaped {b} on a {f}", "The {s}'s {a} is beside the {b}.", "A {a} (and a {b}) in a {f}.",
    "The seat of the toilet is up, next to a {a}.", "A {s} sits on a toilet seat beside a {a}.",
    "Several {a}, {b} and {f}s.", "A {A} IN THE {F}.", "\"A {a}\", said the {s}.", "A {a}\n\nA {b} on the {f}.",
    "A {a}/{b} combo on the {f}.",
]


def _object_set(rng: random.Random, mentioned: list[str]) -> list[str]:
    """Objects of the image: some of those mentioned and a few others."""
    canon = sorted(COCO_VOCABULARY.synonyms)
    keep = [m for m in dict.fromkeys(mentioned) if rng.random() < 0.6]
    return sorted(set(keep) | set(rng.sample(canon, rng.randint(0, 3))))


def draw(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        s, a, b, f = rng.choice(SUBJECTS), rng.choice(NAMES), rng.choice(NAMES), rng.choice(FILLER)
        text = rng.choice(TEMPLATES).format(s=s, S=s.capitalize(), a=a, A=a.capitalize(), b=b, f=f, F=f.upper())
        out.append({"caption": text, "objects": _object_set(rng, extract_objects(text, COCO_VOCABULARY))})
    return out


# The differences mmtune/eval/metrics/hallucination.py documents: pattern's singularize misreads these
# words (or the table misspells them), "stove top oven" is one phrase, "a/b" is two words.
DOCUMENTED = ("bus", "ties", "doggies", "motor bike", "cheesecake", "iphone", "stove top oven", "/")


def compare(records: list[dict], reference: dict) -> dict:
    ours = [extract_objects(r["caption"], COCO_VOCABULARY) for r in records]
    present = [set(r["objects"]) for r in records]
    mine = chair(ours, present)
    differ = [i for i, (o, t) in enumerate(zip(ours, reference["mentions"])) if Counter(o) != Counter(t)]
    documented = [any(w in r["caption"].lower() for w in DOCUMENTED) for r in records]
    kinds = Counter(" / ".join(sorted((Counter(ours[i]) - Counter(reference["mentions"][i])).elements()))
                    + " vs " + " / ".join(sorted((Counter(reference["mentions"][i]) - Counter(ours[i])).elements()))
                    for i in differ)
    return {"n": len(records), "same_mentions": 1 - len(differ) / len(records),
            "chair_s": {"mmtune": mine["chair_s"], "reference": 100 * reference["chair_s"]},
            "chair_i": {"mmtune": mine["chair_i"], "reference": 100 * reference["chair_i"]},
            "same_mentions without a documented cause": 1 - sum(not documented[i] for i in differ) / max(
                1, sum(not d for d in documented)),
            "descriptions without a documented cause": sum(not d for d in documented),
            "differing descriptions without a documented cause": sum(not documented[i] for i in differ),
            "differences (mmtune only vs reference only)": dict(kinds.most_common()),
            "examples": [{"caption": records[i]["caption"], "mmtune": ours[i], "reference": reference["mentions"][i]}
                         for i in differ]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hallucination", type=Path, required=True, help="checkout of LisaAnne/Hallucination")
    ap.add_argument("--pattern", type=Path, required=True, help="checkout of clips/pattern")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=5, help="differing descriptions to print")
    ap.add_argument("--captions", type=Path, help="JSON list of {caption, objects}: print the reference's scores")
    args = ap.parse_args()
    CHAIR, splitter = load_reference(args.hallucination.resolve(), args.pattern.resolve())
    if args.captions:
        records = json.loads(args.captions.read_text())
        ref = reference_chair(CHAIR, args.hallucination.resolve(), records)
        print(json.dumps({"sentence_splitter": splitter, **ref}, indent=1))
        return
    records = draw(random.Random(args.seed), args.n)
    result = compare(records, reference_chair(CHAIR, args.hallucination.resolve(), records))
    result["examples"] = result["examples"][: args.show]
    print(json.dumps({"sentence_splitter": splitter, **result}, indent=1))


if __name__ == "__main__":
    main()
