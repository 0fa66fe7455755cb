"""CoT data variants (one-stage, Multimodal-CoT's two stages) from both record formats, and a
one-stage CoT tuning + evaluation end to end on a tiny world model."""
from __future__ import annotations

import dataclasses
import json

import pytest

from mmtune.data.rationale import answer_stage, one_stage, rationale_and_answer, rationale_stage
from mmtune.data.readers import read_records
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.recipes.cot import CotRun, run_cot

QUESTION = "How many stars are there?\nAnswer the question using a single word or phrase."
RATIONALE = "there is a small red star. there are 2 stars."


def _records(tmp_path):
    """The same question as a LLaVA JSON record with a rationale field and as a messages JSONL
    record whose answer carries the rationale."""
    llava = tmp_path / "cot.json"
    llava.write_text(json.dumps([{"id": "a", "image": "x.png", "rationale": RATIONALE, "conversations": [
        {"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": "2"}]}]))
    chat = tmp_path / "cot.jsonl"
    chat.write_text(json.dumps({"id": "b", "images": ["x.png"], "messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"{RATIONALE} So the answer is 2."}]}]}) + "\n")
    return read_records(llava)[0], read_records(chat)[0]


def test_readers_read_both_rationale_formats(tmp_path):
    field, inline = _records(tmp_path)
    assert field.meta["rationale"] == RATIONALE and field.text_of("assistant") == ["2"]
    assert rationale_and_answer(field) == rationale_and_answer(inline) == (RATIONALE, "2")


def test_a_rationale_that_is_not_a_string_names_the_record(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "r7", "rationale": ["a", "b"], "conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]))
    with pytest.raises(ValueError, match=r"record 0: cannot read record \(id 'r7'\): field 'rationale' is list"):
        read_records(bad)


def test_variants_of_both_formats_are_the_same(tmp_path):
    field, inline = _records(tmp_path)
    for variant in (one_stage, rationale_stage, answer_stage):
        a, b = variant(field), variant(inline)
        assert a.messages == b.messages and a.images == b.images


def test_one_stage_asks_without_the_direct_instruction_and_answers_after_the_rationale(tmp_path):
    sample = one_stage(_records(tmp_path)[0])
    assert sample.text_of("user") == ["How many stars are there?"]
    assert sample.text_of("assistant") == [f"{RATIONALE} So the answer is 2."]
    assert sample.messages[0]["content"][0] == {"type": "image"}


def test_two_stages_write_the_rationale_then_answer_with_it(tmp_path):
    record = _records(tmp_path)[0]
    first = rationale_stage(record)
    assert first.text_of("user") == ["How many stars are there?"] and first.text_of("assistant") == [RATIONALE]
    second = answer_stage(record, rationale="there is 1 star.")
    assert second.text_of("user") == [
        "How many stars are there?\nthere is 1 star.\nAnswer the question using a single word or phrase."]
    assert second.text_of("assistant") == ["2"]
    assert RATIONALE in answer_stage(record).text_of("user")[0]  # trained on the ground-truth rationale


def test_a_record_without_rationale_is_named():
    plain = Sample("q1", [user_turn("How many?"), assistant_turn("2")])
    with pytest.raises(ValueError, match="record 'q1' has no rationale"):
        one_stage(plain)


@pytest.fixture(scope="module")
def world_base(tmp_path_factory):
    from mmtune.world.model import build_base_model
    from mmtune.world.tokenizer import world_processor

    path = tmp_path_factory.mktemp("world_base")
    build_base_model("tiny", seed=0).save_pretrained(path)
    world_processor().save_pretrained(path)
    return path


def test_one_stage_cot_tuning_and_evaluation_end_to_end(world_base, tmp_path):
    run = CotRun(base=str(world_base), target="iconqa", mode="one_stage", out=str(tmp_path / "cot"), n_train=16,
                 n_test=4, seen=("vqa", "mme"), eval_batch_size=4)
    run.training = dataclasses.replace(run.training, max_steps=2, batch_size=4, logging_steps=1)
    record = run_cot(run)
    saved = json.loads((tmp_path / "cot" / "result.json").read_text())
    assert saved["mode"] == "one_stage" and saved["F"] == record["F"]
    assert set(saved["seen_after"]) == {"world_vqa", "world_mme"}
    target = saved["after"]["world_iconqa_cot"]
    assert target["tokens_per_answer"] > 0 and 0 <= target["faithfulness"] <= 100
    assert sum(target["parse_rules"].values()) == 4  # every answer's rule is logged
    assert (tmp_path / "cot" / "model" / "final").is_dir()
    assert saved["train_seconds"] > 0
