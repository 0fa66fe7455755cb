"""CIDEr-D for captioning via pycocoevalcap's ``Cider`` scorer, with COCO's caption tokenization.

The COCO caption evaluation tokenizes with Stanford CoreNLP's PTBTokenizer (a Java jar shipped in
pycocoevalcap), lower-cased, then drops punctuation tokens. ``tokenizer="ptb"`` runs exactly that
(needs ``java``). The default ``"python"`` re-implements the jar's rules that caption text reaches,
so scores do not depend on a JRE; benchmarks/agreement/cider.py measures how often the two agree.
The result names the tokenizer that ran.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS. The jar lower-cases before this filter, so
# "-lrb-" no longer matches "-LRB-" and COCO keeps brackets as words; so do we.
PTB_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                   "-", "--", "...", ";"}

# --- the pure-Python stand-in for PTBTokenizer --------------------------------------------------
# A longest-match lexer like the jar's (JFlex): at each position every rule is tried, the longest
# match wins (trailing context counts, as in JFlex) and ties go to the earlier rule. The rules
# are the subset of Stanford CoreNLP 3.4.1's PTBLexer that caption text reaches, checked against
# the jar by benchmarks/agreement/cider.py.
# Letters and letters-or-digits; vulgar fractions and superscripts are tokens of their own.
_L = "[^\\W\\d_\u00b2\u00b3\u00b9\u00bc-\u00be\u2150-\u215f]"
_LD = "[^\\W_\u00b2\u00b3\u00b9\u00bc-\u00be\u2150-\u215f]"
_APOS = "['\u2019]"
_APOS_ANY = "['\u2019\u2018`]"
_NUM = r"\d*(?:[.,]\d+)+|\d+(?:[.:,]\d+)*"
_WORD = f"{_L}{_LD}*(?:[.!?]{_L}{_LD}*)*"
_HYPHEN = "[-\u2010\u2011]"
_THING_PART = f"(?:[dol]{_APOS_ANY}{_LD})?"  # "o'clock", "d'avignon", "l'amour"
_ABBREV = (  # CoreNLP's ABBREV1/ABBREV2 lists (abbreviations that keep their period), caseless part
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|tues|wed|thu|thurs|fri|ala|ariz|calif|colo|"
    "conn|ct|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn|va|vt|wisc?|wyo|inc|cos?|"
    "corp|pp?t[ye]s?|ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys|tel|est|ext|sq|jr|bros|esq|etc|al|seq|bldg|"
    "mr|mrs|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|capt|ste?|ave|"
    "pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst|assoc|ens|insp|mlle|mme|msgr|sfc|sr|"
    "vs|v|alex|wm|jos|cie|cf|treas|ph|invt|elec|natl|m[ft]g|dept|blvd|rd"
)
_ABBREV_CASED = "Az|Ark|Del|Ill|La|Mass|Miss|Ore|Pa|Tex|Wash"  # CoreNLP matches these capitalised only
_ABBREV_BEFORE_NUMBER = r"(?:ca|figs?|prop|nos?|sects?|arts?|paras?|bldg|pp|op|approx|rs)\."
_CURRENCY = {"\u00a3": "#", "\u20ac": "$", "\u00a2": "cents", "\u0080": "$"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_QUOTE_NAMES = {"\u2018": "`", "\u2019": "'", "\u201c": "``", "\u201d": "''", "\u00ab": "``", "\u00bb": "''",
                "\u2039": "`", "\u203a": "'"}
_BRACKET_NAMES = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


def _rule(pattern: str, ctx: str | None = None, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """A token pattern, optionally followed by trailing context that is matched but not consumed."""
    return re.compile(f"(?P<tok>{pattern})" + (f"(?=(?P<ctx>{ctx}))" if ctx else ""), flags)


# (rule, what the matched text becomes); None keeps the text.
_RULES: list[tuple[re.Pattern[str], Callable[[str], str] | None]] = [
    (_rule("can", "not"), None),  # assimilations: "cannot" -> "can not", "gonna" -> "gon na", ...
    (_rule("gon", "na"), None), (_rule("got", "ta"), None), (_rule("wan", "na"), None),
    (_rule("lem", "me"), None), (_rule("gim", "me"), None), (_rule(f"{_APOS}t", "is"), None),
    (_rule(r"</?[A-Za-z][\w:.\-]*>"), None),  # SGML tags stay whole
    (_rule("[\u2013\u2014\u2015]|-{2,}"), lambda t: "--"),
    (_rule(_WORD, rf"{_APOS}(?:[msd]|re|ve|ll)"), None),  # "dog" of "dog's"
    (_rule(f"{_L}*[a-mo-z]", f"n{_APOS_ANY}t"), None),  # "do" of "don't"
    (_rule(_WORD), None),
    (_rule(f"{_APOS}n{_APOS}|[ldj]{_APOS}|{_APOS}em|{_APOS}[2-9]0s|{_APOS}till?|{_APOS}cause|c'mon"), None),
    (_rule(f"{_APOS}\\d\\d", r"[^\w\-]|$"), None),  # "rock 'n' roll", "'em", "'90s", "'10"
    # Case-sensitive, as in the jar: "n`roll", "O'NEIL"; "ma'am", "THERE`RE".
    (_rule(f"[A-HJ-XZn]{_APOS_ANY}{_L}{{2,}}", flags=0), None),
    (_rule(f"{_L}+[aeiouyAEIOUY]{_APOS_ANY}[aeiouA-Z]{_L}*", flags=0), None),
    (_rule(f"y{_APOS}", _L), None),  # "y'all" -> "y' all"
    (_rule(f"{_APOS}(?:[msd]|re|ve|ll)", r"[^a-zA-Z]|$"), lambda t: "'" + t[1:]),
    (_rule("\u2019(?:[msd]|re|ve|ll)"), lambda t: "'" + t[1:]),  # the jar splits "c’mon" as "c 'm on"
    (_rule(f"n{_APOS_ANY}t", r"[^a-zA-Z]|$"), lambda t: t.replace("\u2019", "'").replace("\u2018", "`")),
    (_rule(f"[-+]?(?:{_NUM})"), None),
    (_rule(r"\d{1,2}[-/]\d{1,2}[-/]\d{2,4}"), None),
    (_rule(r"(?:\d{1,4}[- \u00a0])?\d{1,4}\\?/\d{1,4}"), lambda t: t.replace(" ", "\u00a0")),
    (_rule(f"{_THING_PART}{_LD}+(?:{_HYPHEN}{_THING_PART}(?:{_LD}+|{_NUM}))*"), None),
    (_rule(f"{_THING_PART}[-+]?(?:{_NUM})(?:{_HYPHEN}{_THING_PART}(?:{_LD}+|{_NUM}))*"), None),
    (_rule(f"{_LD}+(?:-{_L}+){{0,2}}(?:\\\\?/{_LD}+(?:-{_L}+){{0,2}}){{1,2}}"), None),
    (_rule("[A-Z]+(?:[+&][A-Z]+)+", flags=0), None),  # AT&T; case-sensitive as in CoreNLP
    (_rule(r"[a-z](?:\.[a-z])*\."), None),  # acronyms keep their period: "u.s.", "e.g.", "a."
    (_rule("[A-Za-z]", r"\.[ \t\u00a0](?:[ \t\u00a0]|[A-Z])", flags=0), None),  # ... but "I." ends a sentence
    (_rule(f"{_WORD}\\.", "[,;:]"), None),  # "nyc.;" keeps its period
    (_rule(rf"(?:{_ABBREV})\."), None),
    (_rule(rf"(?:{_ABBREV_CASED})\.", flags=0), None),
    (_rule(_ABBREV_BEFORE_NUMBER, r"\s+\d"), None),
    (_rule(r"\.\.\.+|\u2026"), lambda t: "..."),
    (_rule(f"@[a-z_][a-z_0-9]*|#{_L}+"), None),  # @names and #tags
    (_rule(r"[\w.%+\-]+@[a-z0-9][a-z0-9.\-]*[a-z0-9]"), None),  # e-mail addresses
    (_rule(r"[A-Za-z]*\$"), None),
    (_rule(r"\*+|#+|_+|@+|[?!]+"), None),
    (_rule("``|''|[\"']"), lambda t: "''"),
    # Curly and angle quotes, one or two together, each written the PTB way (two survive the filter).
    (_rule("[`\u2018-\u201f\u2039\u203a\u00ab\u00bb]{1,2}"), lambda t: "".join(_QUOTE_NAMES.get(c, c) for c in t)),
]


def _next_token(text: str, pos: int) -> tuple[str, int]:
    """The token starting at ``pos`` and where the next one starts."""
    best, best_len = None, 0
    for rx, convert in _RULES:
        m = rx.match(text, pos)
        if m:
            length = m.end("tok") - pos + len(m.groupdict().get("ctx") or "")
            if length > best_len:
                best, best_len = (m, convert), length
    if best is None:
        ch = text[pos]
        return _CURRENCY.get(ch) or _FRACTIONS.get(ch) or _BRACKET_NAMES.get(ch) or _symbol(ch), pos + 1
    m, convert = best
    return (convert(m.group("tok")) if convert else m.group("tok")), m.end("tok")


def _symbol(ch: str) -> str:
    """A lone character the lexer keeps as a token; the jar deletes what it cannot classify (emoji)."""
    return ch if ord(ch) < 0x2000 or 0x2100 <= ord(ch) < 0x2C00 else ""


def python_tokenize(caption: str) -> str:
    """One caption as the PTB pipeline leaves it: lower-case tokens, punctuation removed."""
    tokens, pos = [], 0
    caption = caption.replace("\n", " ")  # as pycocoevalcap does before the jar sees it
    while pos < len(caption):
        if caption[pos].isspace():
            pos += 1
            continue
        tok, pos = _next_token(caption, pos)
        if tok:
            tokens.append(tok.lower())
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
    """CIDEr-D x 100 ("cider") over the set, per-id scores ("per_id") and the tokenizer that ran.

    pycocoevalcap's ``Cider`` is CIDEr-D: n = 1..4, sigma = 6, IDF from these references, Gaussian
    length penalty, clipped counts, x10; its x10 scale is kept and multiplied by 100 here so the
    result reads like published tables (e.g. 110.5).
    """
    from pycocoevalcap.cider.cider import Cider

    if set(predictions) != set(references):
        missing = sorted(set(references) ^ set(predictions))[:5]
        raise ValueError(f"cider: predictions and references cover different ids (e.g. {missing})")
    if not predictions:
        return {"cider": 0.0, "per_id": {}, "tokenizer": tokenizer}
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"cider: unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
    tok = TOKENIZERS[tokenizer]
    ids = list(predictions)
    res = tok({i: [predictions[i]] for i in ids})
    gts = tok({i: list(references[i]) for i in ids})
    score, scores = Cider().compute_score(gts, res)
    return {"cider": 100.0 * float(score), "per_id": {i: 100.0 * float(s) for i, s in zip(ids, scores)},
            "tokenizer": tokenizer}
