"""CIDEr-D for captioning via pycocoevalcap's ``Cider`` scorer, with COCO's caption tokenization.

The COCO caption evaluation tokenizes with Stanford's PTBTokenizer (a Java jar shipped in
pycocoevalcap), lower-cased, then drops punctuation tokens. ``tokenizer="ptb"`` runs exactly that
(needs ``java``). The default ``"python"`` is a pure-Python re-implementation of the parts that
matter once punctuation is dropped (clitic splitting, "can't" -> "ca n't", numbers kept whole);
tests/eval check it against the jar on a fixture whenever Java is installed.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS. Brackets become "-lrb-" etc. after
# lower-casing, which this list (upper-case) no longer matches, so COCO keeps them; we do too.
PTB_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                   "-", "--", "...", ";"}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-",
             '"': "''"}
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "co.", "jr.", "sr.", "inc.", "ltd.", "vs.", "etc.",
                  "no.", "ft.", "mt."}
_CLITIC = re.compile(r"(n't|'s|'re|'ve|'ll|'m|'d)$")
_SPECIAL = {"cannot": ["can", "not"], "gonna": ["gon", "na"], "gotta": ["got", "ta"], "wanna": ["wan", "na"]}
# A token: a word or number whose inner joiners stay ("t-shirt", "u.s", "bus/truck", "1,000",
# "5:30"), with an optional final period; or a run of periods; or any other single character.
_TOKEN = re.compile(r"\w+(?:(?:[-'./&]|(?<=\d)[,:](?=\d))\w+)*(?:\.(?!\.))?|\.+|[^\w\s]")


def _split_word(word: str) -> list[str]:
    if word in _SPECIAL:
        return list(_SPECIAL[word])
    if word.endswith(".") and len(word) > 1 and word not in _ABBREVIATIONS and "." not in word[:-1]:
        # A sentence-final period is its own token (then dropped); "u.s." and "mr." keep theirs.
        return _split_word(word[:-1]) + ["."]
    m = _CLITIC.search(word)
    if m and len(word) > len(m.group(1)):
        return [word[: m.start()], m.group(1)]
    return [word]


def python_tokenize(caption: str) -> str:
    """One caption as the PTB pipeline leaves it: lower-case tokens, punctuation removed.

    Known gaps against the jar: "5:30pm" stays one token (PTB: "5:30 pm") and PTB's full
    abbreviation list is reduced to the common ones above.
    """
    tokens: list[str] = []
    for word in _TOKEN.findall(caption.replace("\n", " ").lower()):
        tokens.extend([_BRACKETS[word]] if word in _BRACKETS else _split_word(word))
    return " ".join(t for t in tokens if t not in PTB_PUNCTUATION)


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """COCO's reference tokenization (Java PTBTokenizer); id -> tokenized captions."""
    if shutil.which("java") is None:
        raise RuntimeError("tokenizer='ptb' needs Java (`java -version`); install a JRE or use tokenizer='python'")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def _python_tokenize_all(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: [python_tokenize(c) for c in v] for k, v in captions.items()}


TOKENIZERS: dict[str, Callable[[Mapping[str, Sequence[str]]], dict[str, list[str]]]] = {
    "python": _python_tokenize_all,
    "ptb": ptb_tokenize,
}


def cider(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
          tokenizer: str = "python") -> dict[str, float]:
    """CIDEr-D x 100 ("cider") over the set, and per-id scores ("per_id"), from pycocoevalcap.

    pycocoevalcap's ``Cider`` is CIDEr-D: n = 1..4, sigma = 6, IDF from these references, Gaussian
    length penalty, clipped counts, x10; its x10 scale is kept and multiplied by 100 here so the
    result reads like published tables (e.g. 110.5).
    """
    from pycocoevalcap.cider.cider import Cider

    if set(predictions) != set(references):
        missing = sorted(set(references) ^ set(predictions))[:5]
        raise ValueError(f"cider: predictions and references cover different ids (e.g. {missing})")
    if not predictions:
        return {"cider": 0.0, "per_id": {}}
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"cider: unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
    tok = TOKENIZERS[tokenizer]
    ids = list(predictions)
    res = tok({i: [predictions[i]] for i in ids})
    gts = tok({i: list(references[i]) for i in ids})
    score, scores = Cider().compute_score(gts, res)
    return {"cider": 100.0 * float(score), "per_id": {i: 100.0 * float(s) for i, s in zip(ids, scores)}}
