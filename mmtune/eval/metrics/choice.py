"""Multiple-choice answer extraction (ScienceQA style): the chosen letter and the rule that found it.

Accepts what VLMEvalKit's ``can_infer`` accepts (vlmeval/utils/matching_util.py: a letter standing
alone, else one option's text) and more ("**B**", "The answer is: B", "B\\n\\nExplanation: ...",
a lower-case "b."), but reads a letter only where the answer uses it as one: "A dog" starts with an
article and "I think" with a pronoun, an option text such as "vitamin C" is no letter, and an answer
that names two different options is ambiguous, never the first of them.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."

_MARKUP = re.compile(r"[*_`#]+")  # markdown emphasis and headings around a letter ("**B**")
_LETTER = re.compile(r"(?<![\w'’-])([A-Za-z])(?![\w'’-])")  # one letter, not part of a word or "X-ray"
# Words after which a capital "A" still names an option ("A is correct", "C and A"), not an article.
_LETTER_VERBS = frozenset({"is", "was", "seems", "looks", "would", "should", "must", "and", "or", "because",
                           "since", "as", "fits", "matches"})
_BE = r"(?:is|would\s+be|should\s+be|must\s+be|will\s+be)"
_STRONG = [  # the answer declared as such: "The answer is: B", "The correct option is B", "B is correct"
    re.compile(rf"\b(?:answer|(?:correct|right|best)\s+(?:option|choice))\s*{_BE}?\s*[:=]?\s*"
               rf"(?:(?:option|choice|letter)\s*)?[(\[]?\s*([A-Za-z])(?![\w'’-])", re.IGNORECASE),
    re.compile(rf"(?<![\w'’-])([A-Za-z])\s+(?:{_BE}|seems)\s+(?:the\s+)?(?:correct|right|best|answer)\b",
               re.IGNORECASE),
]
_WEAK = re.compile(r"\b(?:option|choice|letter)\s*[:#]?\s*[(\[]?\s*([A-Za-z])(?![\w'’-])", re.IGNORECASE)
_DECLARATION = re.compile(r"^(?:(?:i think|based on the image,?)\s+)?"
                          r"(?:(?:the\s+)?(?:correct\s+)?answer\s*(?:is)?\s*[:=]?|it\s+is|it['’]s)\s*")
_FUNCTION_WORDS = frozenset({"a", "an", "the", "i", "you", "we", "they", "he", "she", "it", "this", "that", "is",
                             "are", "of", "to", "in", "on"})
_LEADING = re.compile(r"\s*[(\[]?\s*([A-Za-z])(?![\w'’-])")
# Two options offered together: "C and A", "A, or maybe C", "A/B", "(A) or (C)".
_ALTERNATIVES = re.compile(r"(?<![\w'’-])([A-Za-z])\)?\s*,?\s*(?:\bor\b|\band\b|/|&)\s*(?:(?:maybe|perhaps|possibly)\s+)?"
                           r"(?:(?:option|choice)\s+)?\(?([A-Za-z])(?![\w'’-])", re.IGNORECASE)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")


def _marked(text: str, start: int, end: int) -> bool:
    """The letter at ``text[start:end]`` is wrapped ("(B)", "[B]") or ends a clause ("B.", "B:", "B")."""
    return (text[:start].rstrip().endswith(("(", "[")) or text[end:].lstrip(" \t").startswith((")", "]"))
            or re.match(r"\s*(?:$|[.:;,!?\n]|-\s)", text[end:]) is not None)


def _is_letter(text: str, start: int, end: int) -> bool:
    """Whether the single letter at ``text[start:end]`` names an option rather than being a word."""
    if _marked(text, start, end):
        return True
    letter = text[start:end]
    if letter.islower() or letter == "I":  # "a bird", "I think": lower case and "I" count only when marked
        return False
    following = re.match(r"\s+([a-z]+)", text[end:])
    return following is None or following.group(1) in _LETTER_VERBS


def _one_letter(letters: set[str], valid: str, rule: str) -> tuple[str | None, str] | None:
    if len(letters) > 1:
        return None, "ambiguous"
    if letters and (letter := letters.pop()) in valid:
        return letter, rule
    return None  # a letter beyond the options may still be an option's text ("The answer is I.")


def _mask_option_texts(text: str, choices: Sequence[str]) -> str:
    """Blank the options' own texts that contain a letter word ("vitamin C") so it is not read as a letter."""
    for choice in sorted(choices, key=len, reverse=True):
        if len(choice.strip()) > 1 and _LETTER.search(choice):
            text = re.sub(rf"(?<!\w){re.escape(choice.strip())}(?!\w)", " ", text, flags=re.IGNORECASE)
    return text


def _option_text(text: str, choices: Sequence[str], valid: str) -> tuple[str | None, str]:
    said = _norm(text)
    bare = _DECLARATION.sub("", said)
    exact = [i for i, c in enumerate(choices) if _norm(c) in (said, bare)]
    if len(exact) == 1:
        return valid[exact[0]], "option_text"
    # Longest option first, each found occurrence blanked, so "hot dog" is not also a "dog"; function
    # words ("the", "I") as options count only when they are the whole answer.
    found = []
    for i in sorted(range(len(choices)), key=lambda k: -len(choices[k])):
        option = _norm(choices[i])
        if option and option not in _FUNCTION_WORDS:
            said, hits = re.subn(rf"(?<!\w){re.escape(option)}(?!\w)", " ", said)
            found += [i] if hits else []
    if len(found) == 1:
        return valid[found[0]], "option_text"
    return None, "ambiguous" if found else "unparsed"


def extract_choice(answer: str, choices: Sequence[str]) -> tuple[str | None, str]:
    """The chosen letter (A, B, ...) and the rule that found it; ``(None, rule)`` when none is chosen.

    Rules, first match wins: ``bare`` ("B", "b.", "(C)", "**B**", "[B]"), ``answer_is`` ("The answer
    is: B", "The correct option is B.", "B is correct."), ``leading_letter`` ("B. cat", "B) cat",
    "B\\n\\nExplanation: ..."), ``option_word`` ("Option B"), ``letter`` (the one letter the answer
    names, "I think B"), ``option_text`` (the answer is one option's text, or names exactly one;
    numeric options too: "The answer is 1."). ``ambiguous`` when a rule finds two different options
    ("Both C and A"), ``unparsed`` when none does or the letter is not among the choices.
    """
    valid = LETTERS[: len(choices)]
    text = _MARKUP.sub("", answer).strip()
    bare = re.fullmatch(r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:)]?", text)
    if bare:
        letter = bare.group(1).upper()
        return (letter, "bare") if letter in valid else (None, "unparsed")
    masked = _mask_option_texts(text, choices)
    for m in _ALTERNATIVES.finditer(masked):
        if m.group(1).upper() != m.group(2).upper() and _is_letter(masked, *m.span(1)) and _is_letter(masked, *m.span(2)):
            return None, "ambiguous"
    strong = {m.group(1).upper() for rx in _STRONG for m in rx.finditer(masked) if _is_letter(masked, *m.span(1))}
    found = _one_letter(strong, valid, "answer_is")
    if found:
        return found
    lead = _LEADING.match(masked)
    if lead and _marked(masked, *lead.span(1)) and lead.group(1).upper() in valid:
        return lead.group(1).upper(), "leading_letter"
    weak = {m.group(1).upper() for m in _WEAK.finditer(masked) if _is_letter(masked, *m.span(1))}
    found = _one_letter(weak, valid, "option_word")
    if found:
        return found
    named = {m.group(1).upper() for m in _LETTER.finditer(masked) if _is_letter(masked, *m.span(1))}
    found = _one_letter(named & set(valid), valid, "letter")
    if found:
        return found
    return _option_text(text, choices, valid)


def format_choices(choices: Sequence[str]) -> str:
    """Options as ScienceQA/LLaVA prompts write them: one "A. text" per line."""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
