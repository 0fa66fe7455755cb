"""Golden values for every metric, each worked out by hand in the comments."""
import math
import shutil

import pytest

from mmtune.eval.metrics import (
    cider,
    exact_match,
    extract_choice,
    grounding_scores,
    iou,
    mme_score,
    parse_box,
    pope_scores,
    ptb_tokenize,
    python_tokenize,
    sensitivity,
    vqa_accuracy,
)
from mmtune.eval.metrics.vqa import process_punctuation


def test_vqa_accuracy_leave_one_out():
    # 10 identical answers: each left-out subset holds 9 matches -> min(1, 9/3) = 1.
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0  # "two" -> "2" by processDigitArticle
    # 2 x "yes", 8 x "no", prediction "yes": leaving out a "yes" leaves 1 match -> 1/3 (twice);
    # leaving out a "no" leaves 2 matches -> 2/3 (8 times). (2/3 + 16/3) / 10 = 0.6.
    assert vqa_accuracy("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("maybe", ["yes"] * 10) == 0.0


def test_vqa_accuracy_normalization():
    # "Three." -> period stripped -> "three" -> "3".
    assert vqa_accuracy("Three.", ["3"] * 10) == 1.0
    # A digit,digit comma anywhere makes every punctuation mark vanish: "1,000" -> "1000".
    assert vqa_accuracy("1,000", ["1000"] * 10) == 1.0
    # Contraction map: "dont" -> "don't"; articles dropped: "a dog" -> "dog".
    assert vqa_accuracy("dont", ["don't"] * 10) == 1.0
    assert vqa_accuracy("A dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("a\tdog\n", ["dog"] * 10) == 1.0
    # Answers differ, so they get processPunctuation: "ice-cream" -> "ice cream" (no space next to
    # the hyphen, so it becomes a space). 3 x "ice cream" + 7 x "icecream", prediction "ice cream":
    # leaving out one of the 3 leaves 2 matches -> 2/3; one of the 7 leaves 3 -> 1. (2 + 7) / 10.
    assert vqa_accuracy("ice cream", ["ice-cream"] * 3 + ["icecream"] * 7) == pytest.approx(0.9)


def test_vqa_official_quirks():
    # vqaEval.py @a013f00: when the 10 answers are one string, neither side is normalized, so a
    # raw "Two" never matches "2" and case matters; the default rules normalize both sides.
    assert vqa_accuracy("the dog", ["the dog"] * 10, rules="vqa_eval") == 1.0
    assert vqa_accuracy("Two", ["2"] * 10, rules="vqa_eval") == 0.0
    assert vqa_accuracy("The dog", ["the dog"] * 10, rules="vqa_eval") == 0.0
    assert vqa_accuracy("The dog", ["the dog"] * 10) == 1.0
    # Answers differ, so both sides are normalized: "yes!" -> "yes " -> "yes". 3 x "yes": leaving one
    # out leaves 2 matches (2/3, three times), leaving a "no" out leaves 3 (1, seven times): 0.9.
    assert vqa_accuracy("yes", ["yes!"] * 3 + ["no"] * 7, rules="vqa_eval") == pytest.approx(0.9)
    # re.UNICODE (32) is passed as ``count``: of 40 periods only 32 are stripped.
    assert process_punctuation("." * 40) == "." * 8


def test_exact_match():
    assert exact_match("Blue.", "blue") == 1.0
    assert exact_match(" yes ", "Yes") == 1.0
    assert exact_match("3.", "3") == 1.0
    assert exact_match("blue car", "blue") == 0.0


def test_cider_golden():
    # Two images, refs "a b" and "c d": N = 2 so idf(g) = log 2 - log df(g) = log 2 for every g.
    # Image 2 (candidate == ref): cosine 1 for n = 1, 2; no 3-/4-grams -> 0; no length gap.
    #   CIDEr = 10 * (1 + 1 + 0 + 0) / 4 = 5.0 -> x100 = 500.
    # Image 1, candidate "a": unigram cosine = log2^2 / (log2 * sqrt(2) log2) = 1/sqrt(2); no
    #   bigrams -> 0; length (bigram count) gap 0 - 1 -> penalty exp(-1 / (2 * 6^2)).
    #   CIDEr = 10 * (1/sqrt(2)) * exp(-1/72) / 4 -> x100.
    # The candidate is "A," -> "a" (PTB keeps a lone letter's period: "A." -> "a.", which matches nothing).
    out = cider({"1": "A,", "2": "c d"}, {"1": ["a b"], "2": ["c d"]})
    img1 = 100 * 10 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert out["per_id"]["2"] == pytest.approx(500.0)
    assert out["per_id"]["1"] == pytest.approx(img1)
    assert out["cider"] == pytest.approx((img1 + 500.0) / 2)
    # One image: idf = log 1 - log 1 = 0, every vector is zero -> 0 even for a perfect caption.
    assert cider({"x": "a cat"}, {"x": ["a cat"]})["cider"] == 0.0
    with pytest.raises(ValueError, match="different ids"):
        cider({"1": "a"}, {"2": ["a"]})


CAPTIONS = [
    "A man riding a wave on top of a surfboard.", "Two dogs can't play with the U.S. flag's edge.",
    "A t-shirt costs $3.50 (about 1,000 yen)!", 'The cat\'s bowl -- it is "empty"; isn\'t it?',
    "a woman's hand holding a cell phone...", "Cannot see: kids gonna play, e.g. soccer",
    "a 3-way stop sign at 5:30 pm", "A bus/truck is parked near the curb.", "He said 'hello' to the dog",
    "Mr. Smith & co. are here.", " A  red\nbus",
]


def test_python_tokenizer_examples():
    assert python_tokenize("Two dogs can't play with the U.S. flag's edge.") == \
        "two dogs ca n't play with the u.s. flag 's edge"
    assert python_tokenize("A t-shirt (about 1,000 yen)!") == "a t-shirt -lrb- about 1,000 yen -rrb-"


@pytest.mark.skipif(shutil.which("java") is None, reason="PTBTokenizer parity needs Java")
def test_python_tokenizer_matches_ptb_jar():
    ref = ptb_tokenize({str(i): [c] for i, c in enumerate(CAPTIONS)})
    assert [python_tokenize(c) for c in CAPTIONS] == [ref[str(i)][0] for i in range(len(CAPTIONS))]


def test_mme_score():
    # existence: image 1 both right; image 2 one of two -> acc 3/4 = 75, acc+ 1/2 = 50 -> 125.
    # code_reasoning: "I think yes" has no yes/no in its first 4 chars -> wrong; acc 50, acc+ 0.
    records = [
        {"category": "existence", "image_id": "1", "answer": "Yes, there is", "label": "yes"},
        {"category": "existence", "image_id": "1", "answer": "No", "label": "no"},
        {"category": "existence", "image_id": "2", "answer": "no", "label": "yes"},
        {"category": "existence", "image_id": "2", "answer": "no", "label": "no"},
        {"category": "code_reasoning", "image_id": "3", "answer": "I think yes", "label": "yes"},
        {"category": "code_reasoning", "image_id": "3", "answer": "no.", "label": "no"},
    ]
    out = mme_score(records)
    assert (out["existence/acc"], out["existence/acc+"], out["existence"]) == (75.0, 50.0, 125.0)
    assert (out["code_reasoning/acc"], out["code_reasoning/acc+"]) == (50.0, 0.0)
    assert (out["perception"], out["cognition"], out["total"]) == (125.0, 50.0, 175.0)


def test_pope_scores():
    answers = ["Yes, there is a dog.", "No.", "There is not a cat", "yes", "I see a bird", "no"]
    labels = ["yes", "no", "yes", "no", "no", "yes"]
    # parsed: yes(TP) no(TN) no(FN) yes(FP) unparsed-on-no(FP) no(FN): TP 1, TN 1, FP 2, FN 2.
    # acc 2/6; precision 1/3; recall 1/3; F1 1/3; predicted yes 2/6; 1 unparsed.
    out = pope_scores(answers, labels)
    third = 100 / 3
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert out[key] == pytest.approx(third)
    assert out["unparsed"] == 1
    # Official: the unparsed answer reads as "yes" (still a false positive) -> yes-ratio 3/6.
    official = pope_scores(answers, labels, official=True)
    assert official["yes_ratio"] == pytest.approx(50.0) and official["accuracy"] == pytest.approx(third)


@pytest.mark.parametrize("answer,expected", [
    ("B", ("B", "bare")), ("b.", ("B", "bare")), ("(C)", ("C", "bare")),
    ("A. cat", ("A", "leading_letter")), ("I pick (B) because", ("B", "letter")),
    ("The answer is C.", ("C", "answer_is")), ("dog", ("B", "option_text")),
    ("It is a bird.", ("C", "option_text")), ("A dog", ("B", "option_text")),
    ("D", (None, "unparsed")), ("cat or dog", (None, "ambiguous")), ("", (None, "unparsed")),
])
def test_extract_choice(answer, expected):
    assert extract_choice(answer, ["cat", "dog", "bird"]) == expected


def test_iou_and_boxes():
    # Overlap 1x1, areas 4 and 4 -> 1 / (4 + 4 - 1) = 1/7.
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert parse_box("[0.1, 0.2, 0.5, 0.6]") == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert parse_box("(100,200),(500,600)", "norm1000") == pytest.approx((0.1, 0.2, 0.5, 0.6))
    # Pixel corners given backwards on a 100x100 image -> reordered and divided by the size.
    assert parse_box("<box>50 20 10 80</box>", "pixel", (100, 100)) == pytest.approx((0.1, 0.2, 0.5, 0.8))
    assert parse_box("no box here 1 2") is None


def test_grounding_scores():
    # IoUs 1, 0 (unparsed), 0.25 (a quarter of the reference) -> acc@0.5 1/3; mean IoU 1.25/3.
    out = grounding_scores([(0, 0, .5, .5), None, (0, 0, 1, 1)], [(0, 0, .5, .5), (0, 0, 1, 1), (0, 0, .5, .5)])
    assert out["acc@0.5"] == pytest.approx(100 / 3)
    assert out["mean_iou"] == pytest.approx(125 / 3)
    assert out["unparsed"] == 1


def test_sensitivity():
    assert sensitivity([40.0, 60.0]) == pytest.approx(0.2)  # std 10 / mean 50
    assert sensitivity({"t1": 50.0, "t2": 50.0}) == 0.0
    assert math.isnan(sensitivity([0.0, 0.0]))
