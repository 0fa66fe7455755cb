"""VQA accuracy under each reference evaluator's answer rules, and exact match.

VQA accuracy is one formula (each of the human answers left out in turn, min(1, matches among the
others / 3), averaged) under three sets of answer rules, one per reference tool, kept apart
because they score the same output differently (``VQA_RULES``):

- ``vqa_eval``: the official script, GT-Vision-Lab/VQA
  ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` at a013f00 ("Fixed processing answers bug").
  When the human answers are all the same string it compares the raw strings; otherwise it
  normalizes the prediction and every answer (punctuation, digit words, articles, contractions).
- ``lmms_eval_vqav2``: lmms-eval ``lmms_eval/tasks/vqav2/utils.py``: the same normalization,
  always applied to both sides.
- ``evalai``: the EvalAI answer processor (from mmf) on both sides: LLaVA
  ``llava/eval/m4c_evaluator.py`` (``TextVQAAccuracyEvaluator``) and lmms-eval
  ``lmms_eval/tasks/{textvqa,ok_vqa}/utils.py``. It also lower-cases first and drops every "," and
  "?" before the official steps, so raw human answers ("The Beatles", "beatles.") match.

The lookup tables and regexes below reproduce the references' own, quirks included (each quirk
is named where it acts); being bit-compatible with them is the point.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
DIGIT_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
# As in the references: "(?!<=\d)" is a typo for a lookbehind and acts as a lookahead.
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py: one comma between two digits
EVALAI_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")  # EvalAI processor: one or more commas
PUNCTUATION = (";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
               "`", ",", "?", "!")


def process_punctuation(text: str, comma_strip: re.Pattern[str] = COMMA_STRIP) -> str:
    """The references' ``processPunctuation``: a mark next to a space (or any mark in a text with a
    digit,digit comma) is deleted, any other becomes a space; periods not before a digit go."""
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or comma_strip.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # The references pass re.UNICODE (== 32) positionally, i.e. as ``count``: at most 32 periods go.
    return PERIOD_STRIP.sub("", out, re.UNICODE)


def process_digit_article(text: str) -> str:
    """The references' ``processDigitArticle``: lower-case, digit words -> digits, no articles,
    contractions restored ("dont" -> "don't")."""
    words = [DIGIT_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _official_normalize(text: str) -> str:
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def _lmms_vqav2_normalize(text: str) -> str:
    return process_digit_article(process_punctuation(_clean_whitespace(text), EVALAI_COMMA_STRIP))


def evalai_normalize(text: str) -> str:
    """The EvalAI answer processor: lower-case, drop "," and "?", split "'s" off ("dog's" -> "dog 's"),
    then the official punctuation / digit / article / contraction steps."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return _lmms_vqav2_normalize(text)


@dataclass(frozen=True)
class VQARules:
    """One reference's answer rules: where they come from and how an answer is normalized."""

    source: str  # the tool and file (and commit) these rules reproduce
    normalize: Callable[[str], str]
    raw_when_unanimous: bool = False  # vqaEval.py: identical human answers are compared unnormalized


VQA_RULES = {
    "vqa_eval": VQARules(
        "GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py @a013f00 (official)",
        _official_normalize, raw_when_unanimous=True),
    "lmms_eval_vqav2": VQARules("lmms-eval lmms_eval/tasks/vqav2/utils.py (vqav2_process_results)",
                                _lmms_vqav2_normalize),
    "evalai": VQARules(
        "EvalAIAnswerProcessor on prediction and human answers: LLaVA llava/eval/m4c_evaluator.py "
        "(TextVQAAccuracyEvaluator), lmms-eval lmms_eval/tasks/{textvqa,ok_vqa}/utils.py",
        evalai_normalize),
}
DEFAULT_VQA_RULES = "lmms_eval_vqav2"


def vqa_rules(name: str) -> VQARules:
    """The rules registered as ``name``; the error lists the known ones."""
    if name not in VQA_RULES:
        raise ValueError(f"unknown VQA answer rules {name!r}; use one of {', '.join(VQA_RULES)}")
    return VQA_RULES[name]


def normalize_vqa_answer(text: str, rules: str = DEFAULT_VQA_RULES) -> str:
    """An answer as ``rules`` normalizes it before comparing (``vqa_eval`` skips this step when
    the human answers are unanimous)."""
    return vqa_rules(rules).normalize(_clean_whitespace(text))


def vqa_accuracy(prediction: str, answers: Sequence[str], rules: str = DEFAULT_VQA_RULES) -> float:
    """VQA accuracy in [0, 1]: mean over the human answers, each left out in turn, of
    min(1, matches among the others / 3), with ``rules`` (a ``VQA_RULES`` key) deciding how the
    prediction and the answers are normalized first.

    Answers are left out by position, as the references do (their answer records carry ids).
    """
    if not answers:
        raise ValueError("vqa_accuracy: no reference answers given; a VQA sample needs its human answers")
    rule = vqa_rules(rules)
    gts = [_clean_whitespace(a) for a in answers]
    pred = _clean_whitespace(prediction)
    if not (rule.raw_when_unanimous and len(set(gts)) == 1):
        gts = [rule.normalize(a) for a in gts]
        pred = rule.normalize(pred)
    accs = [min(1.0, sum(1 for j, g in enumerate(gts) if j != i and g == pred) / 3) for i in range(len(gts))]
    return sum(accs) / len(accs)


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when equal after lower-casing, stripping and dropping one trailing period (GQA, OCR-VQA)."""
    return float(_normalize_exact(prediction) == _normalize_exact(answer))


def _normalize_exact(text: str) -> str:
    text = text.strip().lower()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text
