"""VQA accuracy and POPE against their reference evaluators, and what `mmtune eval` records.

Golden values were computed by running the reference code itself on each case (see
benchmarks/agreement/vqa_pope.py for how each is loaded and run):
- ``vqa_eval``: GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py at a013f00
  ("Fixed processing answers bug"), ``VQAEval(...).evaluate()`` then ``evalQA[id] / 100``;
- ``lmms_eval_vqav2``: EvolvingLMMs-Lab/lmms-eval at 75571cf, lmms_eval/tasks/vqav2/utils.py
  ``vqav2_process_results``;
- ``evalai``: lmms-eval at 75571cf, lmms_eval/tasks/textvqa/utils.py ``textvqa_process_results``,
  and haotian-liu/LLaVA at c121f04, llava/eval/m4c_evaluator.py ``TextVQAAccuracyEvaluator``
  (both gave the same value on every case);
- POPE: RUCAIBox/POPE evaluate.py at 3df3ba1 (file unchanged since f3ec604), run as a script on
  the answers and labels below; its ``pred_list`` and printed metrics.
"""
import json

import pytest
from PIL import Image

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.eval.metrics.vqa import VQA_RULES, normalize_vqa_answer, vqa_accuracy
from mmtune.eval.metrics.yesno import parse_pope, parse_pope_official, pope_scores
from mmtune.eval.runner import evaluate
from mmtune.eval.tasks.benchmarks import BENCHMARKS
from mmtune.eval.tasks.kinds import pope_task, vqa_task
from mmtune.files import read_jsonl
from mmtune.models.tiny import build_tiny

# (prediction, 10 human answers, vqaEval.py, lmms-eval vqav2, lmms-eval textvqa == LLaVA m4c)
VQA_GOLDEN = [
    ("the dog", ["the dog"] * 10, 1.0, 1.0, 1.0),  # issue 13's first example
    ("the beatles", ["the beatles"] * 8 + ["beatles"] * 2, 1.0, 1.0, 1.0),  # issue 13's TextVQA example
    ("Dog.", ["dog"] * 10, 0.0, 1.0, 1.0),  # unanimous answers: vqaEval.py compares raw strings
    ("beatles", ["Beatles"] * 10, 0.0, 1.0, 1.0),
    ("Two", ["2"] * 10, 0.0, 1.0, 1.0),
    ("red,blue", ["red blue"] * 4 + ["red"] * 6, 1.0, 1.0, 0.0),  # EvalAI drops the comma: "redblue"
    ("1,,000", ["1000"] * 9 + ["1,000"], 0.0, 1.0, 1.0),  # one comma between digits vs one or more
    ("yes", ["yes"] * 2 + ["no"] * 8, 0.6, 0.6, 0.6),
    ("Who's there?", ["who's there", "whos there", "who's there", "who is there", "who's there", "who",
                      "whos there", "who's there", "who's there", "someone"], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("prediction,answers,official,vqav2,evalai", VQA_GOLDEN)
def test_vqa_accuracy_matches_each_reference(prediction, answers, official, vqav2, evalai):
    assert vqa_accuracy(prediction, answers, rules="vqa_eval") == pytest.approx(official)
    assert vqa_accuracy(prediction, answers, rules="lmms_eval_vqav2") == pytest.approx(vqav2)
    assert vqa_accuracy(prediction, answers, rules="evalai") == pytest.approx(evalai)


def test_vqa_raw_answer_set_under_old_and_new_rules():
    # The 2016 vqaEval.py normalized only the prediction ("beatles") and left "the beatles" as typed:
    # 2 matches out of 10 -> (2/3 * 8 + 1/3 * 2) / 10 = 0.6 (issue 13). Every current reference: 1.0.
    answers = ["the beatles"] * 8 + ["beatles"] * 2
    assert all(vqa_accuracy("the beatles", answers, rules=r) == 1.0 for r in VQA_RULES)


def test_evalai_splits_possessives_on_both_sides():
    # EvalAIAnswerProcessor.word_tokenize: lower-case, drop "," and "?", "'s" -> " 's".
    assert normalize_vqa_answer("The Dog's bowl, please?", rules="evalai") == "dog 's bowl please"
    assert normalize_vqa_answer("The Dog's bowl, please?", rules="vqa_eval") == "dog's bowl please"


def test_unknown_vqa_rules_name_the_known_ones():
    with pytest.raises(ValueError, match="vqa_eval, lmms_eval_vqav2, evalai"):
        vqa_accuracy("dog", ["dog"] * 10, rules="official")


def test_each_vqa_benchmark_names_its_reference():
    rules = {b.name: dict(b.options).get("rules") for b in BENCHMARKS if b.kind == "vqa"}
    assert rules == {"vqav2": "lmms_eval_vqav2", "okvqa": "evalai", "textvqa": "evalai"}
    assert "m4c_evaluator.py" in vqa_task("t", [], chance=0.0, seen=True, rules="evalai").reference
    assert "a013f00" in vqa_task("t", [], chance=0.0, seen=True, rules="vqa_eval").reference
    assert "vqav2/utils.py" in vqa_task("t", [], chance=0.0, seen=True).reference


POPE_ANSWERS = ["No.", "No, there is not.", "No!", "NO", "no\nthere is no dog", "There isn't a dog.",
                "Yes, there is a dog, not a cat.", "Maybe.", "", "Not sure. Yes"]
POPE_LABELS = ["no", "no", "no", "no", "yes", "no", "yes", "yes", "no", "yes"]


def test_pope_official_is_evaluate_py():
    # evaluate.py's pred_list on POPE_ANSWERS, and its printed metrics (x100 here).
    assert [parse_pope_official(a) for a in POPE_ANSWERS] == [
        "no", "no", "yes", "yes", "no", "yes", "no", "yes", "yes", "yes"]
    out = pope_scores(POPE_ANSWERS, POPE_LABELS, official=True)
    assert out["accuracy"] == pytest.approx(40.0) and out["precision"] == pytest.approx(100 / 3)
    assert out["recall"] == pytest.approx(50.0) and out["f1"] == pytest.approx(40.0)
    assert out["yes_ratio"] == pytest.approx(60.0) and out["unparsed"] == 0


def test_pope_default_reads_more_and_reports_the_rest():
    reads = [parse_pope(a) for a in POPE_ANSWERS]
    assert reads == [("no", "leading")] * 5 + [("no", "negation"), ("yes", "leading"), (None, "unparsed"),
                                               (None, "unparsed"), ("no", "negation")]
    # By hand: TP 1 (the dog), TN 5 (all five "no" probes answered no), FN 3 (the no\n answer, the
    # negation on a yes probe, "Maybe." on a yes probe), FP 1 ("" on a no probe, unparsed = wrong).
    out = pope_scores(POPE_ANSWERS, POPE_LABELS)
    assert out["accuracy"] == pytest.approx(60.0) and out["precision"] == pytest.approx(50.0)
    assert out["recall"] == pytest.approx(25.0) and out["f1"] == pytest.approx(100 / 3)
    assert out["yes_ratio"] == pytest.approx(10.0) and out["unparsed"] == 2


def test_pope_label_that_is_not_yes_or_no_is_named():
    with pytest.raises(ValueError, match=r"POPE probe 1: label 'maybe'"):
        pope_scores(["yes", "no"], ["yes", "maybe"])


def test_eval_results_record_reference_and_unparsed(tmp_path):
    model, processor = build_tiny("llava", seed=0)
    samples = [Sample(f"p{i}", [user_turn(f"Is there a {obj} in the image?"), assistant_turn(label)],
                      [Image.new("RGB", (24, 24), "red")], {"answer": label})
               for i, (obj, label) in enumerate([("dog", "yes"), ("cat", "no"), ("cup", "yes"), ("car", "no")])]
    for official in (False, True):
        task = pope_task("pope_toy", samples, chance=50.0, seen=True, official=official)
        result = evaluate(model, processor, [task], out_dir=tmp_path, progress=False)["pope_toy"]
        saved = json.loads((tmp_path / "results.json").read_text())["tasks"]["pope_toy"]
        rules = [r["rule"] for r in read_jsonl(tmp_path / "pope_toy.samples.jsonl")]
        assert saved["reference"] == task.reference and "RUCAIBox/POPE evaluate.py" in task.reference
        assert saved["unparsed"] == result["unparsed"] == rules.count("unparsed")
        assert result["scores"]["unparsed"] == rules.count("unparsed")
        if official:
            assert result["unparsed"] == 0 and set(rules) == {"official"}
