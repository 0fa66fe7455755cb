"""Chain-of-thought evaluation: answers read after a rationale (golden strings), CoT prompts, costs."""
from __future__ import annotations

import json

import pytest

from mmtune.data.rationale import cot_prompt, split_rationale
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.eval.cot import (
    ZERO_SHOT_TRIGGER,
    cot_task,
    extract_after_rationale,
    rationale_in_answer,
    with_answer_costs,
)
from mmtune.eval.task import get_task
from mmtune.world.rationale import rationale_samples, split_statements
from mmtune.world.tokenizer import world_tokenizer

CHOICES = ["star", "cross", "triangle", "diamond"]


def _sample(**meta) -> Sample:
    return Sample("s", [user_turn("q"), assistant_turn("a")], meta=meta)


# (raw answer, reference meta, expected span, rule that fires); hand-written, messy ones included
GOLDEN = [
    ("there is no triangle. the cross is below the star. the answer is B.", {"choices": CHOICES}, "B", "answer_is"),
    ("Looking at the image, the square is highest. So the answer is (C).", {"choices": CHOICES}, "(C)", "answer_is"),
    ("**Answer:** D", {"choices": CHOICES}, "D", "answer_is"),
    ("The answer is A. Wait, no: the answer is D.", {"choices": CHOICES}, "D", "answer_is"),
    ("A star is above the circle, therefore C", {"choices": CHOICES}, "C", "last_letter"),
    ("Option A is wrong; (B) is right", {"choices": CHOICES}, "B", "last_letter"),
    ("I see 2 red stars and 1 blue star, 3 in total", {"answer": "3"}, "3", "last_number"),
    ("there are 3 stars. the answer is 3.", {"answer": "3"}, "3", "answer_is"),
    ("the answer is 0.5.", {"answer": "0.5"}, "0.5", "answer_is"),
    ("The red circle is below the square, so the caption is wrong: no.", {"answer": "yes"}, "no", "last_yes_no"),
    ("Yes, there is water.\nAnswer: yes", {"answer": "yes"}, "yes", "answer_is"),
]
UNPARSED = [
    ("I cannot tell from this image.", {"choices": CHOICES}),
    ("there are many stars", {"answer": "3"}),
    ("It is red.", {"answers": ["red"] * 10}),  # free-form answers need "the answer is"
]


@pytest.mark.parametrize("raw, meta, span, rule", GOLDEN)
def test_answer_extracted_after_a_rationale(raw, meta, span, rule):
    assert extract_after_rationale(raw, _sample(**meta)) == (span, rule)


@pytest.mark.parametrize("raw, meta", UNPARSED)
def test_no_answer_is_unparsed(raw, meta):
    assert extract_after_rationale(raw, _sample(**meta)) == (None, "unparsed")


def test_split_rationale_reads_the_answer_written_after_it():
    assert split_rationale("there are 3 stars. So the answer is 3.") == ("there are 3 stars.", "3")
    assert split_rationale("the circle is on top. The answer is: (B)") == ("the circle is on top.", "(B)")
    assert split_rationale("the answer is 3.") == ("", "3")
    assert split_rationale("3") is None


def test_the_rationale_is_what_precedes_the_answer():
    assert rationale_in_answer("there are 3 stars. So the answer is 3.", "3") == "there are 3 stars."
    assert rationale_in_answer("there are 3 stars. 3", "3") == "there are 3 stars."
    assert rationale_in_answer("3", "3") == rationale_in_answer("B.", "B") == ""


def test_cot_prompt_drops_the_direct_answer_instruction_and_adds_the_trigger():
    asked = "Which shape is closest to the top of the image?\nA. star\nB. cross\n" \
            "Answer with the option's letter from the given choices directly."
    assert cot_prompt(asked, ZERO_SHOT_TRIGGER) == \
        "Which shape is closest to the top of the image?\nA. star\nB. cross\nLet's think step by step."
    assert cot_prompt("How many stars are there?\nAnswer the question using a single word or phrase.") == \
        "How many stars are there?"


def test_cot_task_scores_answers_after_rationales_and_logs_both_rules():
    task = get_task("world_sciqa", n=3)
    cot = cot_task(task, trigger="")
    assert cot.name == "world_sciqa_cot" and cot.fingerprint() != task.fingerprint()
    assert cot.generation.max_new_tokens > task.generation.max_new_tokens
    for sample in cot.samples:
        text = sample.text_of("user")[-1]
        assert "directly" not in text and text.endswith("D. " + sample.meta["choices"][3])
    gold = {s.id: s.meta["rationale"] for s in rationale_samples("sciqa", "test", 3)}
    judged = [cot.judge(s, f"{gold[s.id]} the answer is {s.meta['answer']}.") for s in cot.samples]
    assert [p.parsed.rule for p in judged] == ["answer_is/bare"] * 3 and [p.score for p in judged] == [1.0] * 3
    scores = cot.aggregate(judged)
    assert scores["accuracy"] == 100.0 and scores["faithfulness"] == 100.0 and scores["rationale_rate"] == 100.0


def test_faithfulness_falls_by_the_injected_false_statements():
    task = cot_task(get_task("world_iconqa", n=1), trigger="")
    sample = rationale_samples("iconqa", "test", 1)[0]
    statements = split_statements(sample.meta["rationale"])
    n = int(sample.meta["answer"])
    wrong_count = statements[-1].replace(str(n), str(n + 1)) + "."  # the count statement, off by one
    raw = f"{sample.meta['rationale']} {wrong_count} the answer is {n}."
    scores = task.aggregate([task.judge(task.samples[0], raw)])
    assert scores["faithfulness"] == pytest.approx(100 * len(statements) / (len(statements) + 1))


def test_tokens_per_answer_counts_the_generated_text():
    task = with_answer_costs(get_task("world_sciqa", n=2), world_tokenizer())
    p1, p2 = (task.judge(s, raw) for s, raw in zip(task.samples, ["the answer is B.", "B"]))
    # "▁the ▁answer ▁is ▁B ." = 5 tokens and "▁B" = 1, by hand from the world's word-level vocabulary
    assert task.aggregate([p1, p2])["tokens_per_answer"] == 3.0


def test_yes_no_aggregates_read_the_extracted_answer_not_the_rationale():
    task = get_task("world_pope", n=6)
    cot = cot_task(task, trigger="")
    judged = [cot.judge(s, f"there is no cat. the answer is {s.meta['answer']}.") for s in cot.samples]
    scores = cot.aggregate(judged)
    assert scores["accuracy"] == 100.0 and scores["f1"] == 100.0


def test_eval_command_cot_prompts_with_the_trigger_and_logs_costs(tmp_path, capsys):
    from mmtune.cli import main
    from mmtune.models.tiny import save_tiny

    checkpoint = save_tiny("llava", tmp_path / "tiny_llava")
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(checkpoint), "--tasks", "world_iconqa", "--n", "3", "--batch-size", "3",
            "--cot", "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)["world_iconqa_cot"]
    assert result["scores"]["tokens_per_answer"] > 0 and sum(result["parse_rules"].values()) == 3
    prompts = [json.loads(line)["prompt"] for line in (out / "world_iconqa_cot.samples.jsonl").read_text().splitlines()]
    assert all(ZERO_SHOT_TRIGGER in p and "single word" not in p for p in prompts)
    assert main(["eval", "--model", str(checkpoint), "--tasks", "world_iconqa", "--cot-trigger", ""]) == 2
    assert "--cot-trigger is used only with --cot" in capsys.readouterr().err
