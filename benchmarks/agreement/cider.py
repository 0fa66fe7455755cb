"""CIDEr tokenizer agreement: mmtune's pure-Python PTB stand-in vs pycocoevalcap's PTBTokenizer.

Run by hand, never by the tests (needs Java):  python benchmarks/agreement/cider.py [--n 3000] [--seed 0]

Draws ``--n`` randomized messy captions (what models and annotators write: curly quotes and
apostrophes, contractions, possessives, "!!", "?!", runs of periods, ellipses, dashes, brackets,
numbers, times, money, abbreviations, acronyms, markdown, stray spaces and newlines), tokenizes
them with both, and reports the share tokenized identically token for token, then the CIDEr-D
gap (x100 scale) between the two tokenizers on random corpora built from the same captions.
Prints one JSON object; ``--show`` also prints the first disagreements.
"""
from __future__ import annotations

import argparse
import json
import random

SUBJECTS = ["a man", "A woman", "two dogs", "the cat", "a group of people", "A little girl", "an old bus",
            "the kids", "a red car", "Three zebras", "a young boy", "the chef", "A plate of food", "the U.S. flag",
            "Mr. Smith", "Dr. Jones", "a t-shirt", "a 3-way stop sign", "the giraffe", "someone", "it"]
VERBS = ["is riding", "sits on", "is standing next to", "holds", "looks at", "is playing with", "walks past",
         "is parked near", "jumps over", "can't reach", "won't leave", "doesn't see", "isn't near", "cannot find",
         "is gonna eat", "wanna grab", "ain't near", "is on top of"]
OBJECTS = ["a surfboard", "the beach", "a wave", "a frisbee", "the table", "a cell phone", "a pizza", "the street",
           "a bench", "the kitchen counter", "a U.S. map", "a bus/truck", "a hot-dog stand", "the 5:30pm train",
           "a $3.50 sandwich", "1,000 balloons", "the 1990s car", "a 50% off sign", "rock'n'roll records",
           "a half-eaten donut", "a #1 jersey", "an e-mail", "the St. Louis arch", "a 2x4 board", "a 12-year-old boy",
           "an A&W sign", "the No. 5 bus", "a 3.5 inch screen", "a co-op store", "a long-haired cat"]
APOSTROPHES = ["'", "\u2019", "\u2018", "`", "\u00b4"]
QUOTES = [('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019"), ("``", "''"), ("\u00ab", "\u00bb")]
ENDINGS = [".", "", "!", "!!", "?", "?!", "!?", "...", "....", "..", "\u2026", " .", ". ", ".\n", "!!!", ";", ":",
           ". .", "?!?", " !", ".'", '."', "\u201d."]
JOINERS = [", ", " - ", " -- ", " \u2013 ", " \u2014 ", "; ", " and ", ": ", " / ", " & ", " (", " [", "\n", "  ",
           "\t", "...", ", and ", " \u2026 "]
INSERTS = ["({})", "[{}]", "{{{}}}", "*{}*", "**{}**", "<{}>", "_{}_", "#{}", "@{}", "{}'s", "{}s'", "{}'",
           "{} 's", "{}n't", "{}'re", "{}'ll", "{}'ve", "{}'d", "{}'m", "'{}", "{}!", "{}?", "{}.", "{}.."]
WORDS = ["dog", "cats", "It", "there", "they", "we", "you", "I", "she", "he", "don", "can", "do", "is", "that",
         "what", "John", "lady", "kids", "bus", "U.S", "e.g", "i.e", "etc", "vs", "St", "Jr", "Inc", "a.m", "p.m",
         "OK", "TV", "NYC", "3", "1.5", "10", "2", "1/2", "\u00bd", "100%", "$5", "\u00a35", "\u20ac5", "5pm",
         "3D", "x", "c'mon", "o'clock", "y'all", "'90s", "'em", "ma'am", "l'amour", "d'Avignon", "Mc'Donald"]


def _word(rng: random.Random) -> str:
    w = rng.choice(WORDS)
    if rng.random() < 0.5:
        w = rng.choice(INSERTS).format(w)
    if "'" in w and rng.random() < 0.4:
        w = w.replace("'", rng.choice(APOSTROPHES))
    return w


def messy_caption(rng: random.Random) -> str:
    """One caption: a plain clause, then random insertions, joiners, quotes and a messy ending."""
    parts = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"]
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice(JOINERS))
        parts.append(" ".join(_word(rng) for _ in range(rng.randint(1, 4))) if rng.random() < 0.6 else
                     f"{rng.choice(SUBJECTS).lower()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}")
    text = "".join(parts)
    if rng.random() < 0.25:
        left, right = rng.choice(QUOTES)
        words = text.split(" ")
        i = rng.randrange(len(words))
        j = rng.randrange(i, len(words))
        words[i], words[j] = left + words[i], words[j] + right
        text = " ".join(words)
    if rng.random() < 0.2:
        text = text.replace("'", rng.choice(APOSTROPHES))
    text += rng.choice(ENDINGS)
    if rng.random() < 0.15:
        text = rng.choice([" ", "  ", "\n", "Caption: ", "- ", "1. ", "\u201c"]) + text
    if rng.random() < 0.3:
        text = text.upper() if rng.random() < 0.3 else text.lower()
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="captions to draw")
    ap.add_argument("--corpora", type=int, default=200, help="random CIDEr corpora to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many disagreements")
    args = ap.parse_args()

    from mmtune.eval.metrics.caption import cider, ptb_tokenize, python_tokenize

    rng = random.Random(args.seed)
    captions = [messy_caption(rng) for _ in range(args.n)]
    ptb = ptb_tokenize({str(i): [c] for i, c in enumerate(captions)})
    ours = [python_tokenize(c) for c in captions]
    differ = [i for i, c in enumerate(captions) if ours[i] != ptb[str(i)][0]]
    for i in differ[: args.show]:
        print(json.dumps({"caption": captions[i], "python": ours[i], "ptb": ptb[str(i)][0]}, ensure_ascii=False))

    gaps = []
    for _ in range(args.corpora):
        k = rng.randint(5, 40)
        picked = rng.sample(range(args.n), k * 6)
        preds = {str(j): captions[picked[j]] for j in range(k)}
        refs = {str(j): [captions[p] for p in picked[k + 5 * j: k + 5 * j + 5]] for j in range(k)}
        gaps.append(abs(cider(preds, refs, tokenizer="python")["cider"] - cider(preds, refs, tokenizer="ptb")["cider"]))
    print(json.dumps({
        "captions": args.n, "seed": args.seed,
        "identical_token_for_token": round(1 - len(differ) / args.n, 4), "disagreements": len(differ),
        "cider_corpora": args.corpora, "cider_abs_gap_mean": round(sum(gaps) / len(gaps), 4),
        "cider_abs_gap_max": round(max(gaps), 4),
        "cider_corpora_identical": sum(g < 1e-9 for g in gaps),
    }))


if __name__ == "__main__":
    main()
