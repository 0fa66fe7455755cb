"""VQA accuracy (the official VQA evaluation, bit-for-bit) and exact match.

The normalization tables and regexes are copied from the official ``vqaEval.py``
(github.com/GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation), including its quirks;
reproducing them is the point, so they are kept verbatim and each quirk is documented.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

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
# Verbatim: "(?!<=\d)" is a typo for a lookbehind in the original and acts as a lookahead.
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
PUNCTUATION = (";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
               "`", ",", "?", "!")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``."""
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # The original passes re.UNICODE (== 32) positionally, i.e. as ``count``: at most 32 periods go.
    return PERIOD_STRIP.sub("", out, re.UNICODE)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case, digit words -> digits, no articles."""
    words = [DIGIT_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_answer(text: str) -> str:
    """A prediction as the official script normalizes it before comparing."""
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def vqa_accuracy(prediction: str, answers: Sequence[str], official: bool = True) -> float:
    """VQA accuracy in [0, 1]: mean over the human answers, each left out in turn, of
    min(1, matches among the others / 3).

    ``official=True`` reproduces the reference script: the prediction is fully normalized, but the
    human answers are not whitespace-cleaned and only get ``processPunctuation``, and only when
    they are not all identical (``len(set(answers)) > 1``); the released annotations are already normalized, which is why it
    works there. ``official=False`` normalizes every answer fully, always (for references that were
    not pre-normalized, e.g. OK-VQA-style raw strings).
    """
    if not answers:
        raise ValueError("vqa_accuracy: no reference answers given; a VQA sample needs its human answers")
    pred = normalize_vqa_answer(prediction)
    if not official:
        gts = [normalize_vqa_answer(a) for a in answers]
    elif len(set(answers)) > 1:
        gts = [process_punctuation(a) for a in answers]
    else:
        gts = list(answers)
    # Leave one out by position: the reference compares answer dicts carrying unique answer_ids.
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
