"""Tool-use SFT data from the world, `mmtune tools`, and `mmtune eval --tools` end to end."""
import json

import pytest

from mmtune.cli import main
from mmtune.data.collate import SFTCollator
from mmtune.tools.calls import DSLFormat
from mmtune.tools.traces import plan_counting, plan_grounding, tool_use_samples
from mmtune.world.tokenizer import world_processor


@pytest.mark.parametrize("task", ["iconqa", "refcoco"])
def test_traces_call_the_tools_and_answer_what_they_returned(task):
    samples, dropped = tool_use_samples(task, "train", 40)
    assert len(samples) == 40 and dropped == 0  # the pixel tools agree with every reference
    for s in samples:
        roles = [m["role"] for m in s.messages]
        assert roles == ["user", "assistant", "user", "assistant"]
        question, result = s.text_of("user")
        call, answer = s.text_of("assistant")
        assert question.endswith(DSLFormat().tool_line())
        assert DSLFormat().parse_one(call).tool.name == {"iconqa": "count", "refcoco": "detect"}[task]
        assert answer == result == s.meta["answer"]


def test_traces_train_on_every_assistant_turn_and_tokenize_without_unknown_words():
    processor = world_processor()
    samples, _ = tool_use_samples("refcoco", "train", 4)
    batch = SFTCollator(processor)(samples)
    assert (batch["input_ids"] == processor.tokenizer.unk_token_id).sum() == 0
    labelled = processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] != -100])
    call, answer = samples[0].text_of("assistant")
    assert call in labelled and answer in labelled  # the call and the answer are both learned


def test_planners_read_the_world_questions_and_refuse_others():
    assert plan_counting("Count the stars in the image.")[0].arguments == {"name": "star"}
    assert plan_grounding("... this sentence describes: the red circle.")[0].arguments == {"name": "red circle"}
    with pytest.raises(ValueError, match="no shape plural found"):
        plan_counting("What colour is the circle?")
    with pytest.raises(ValueError, match="no tool planner for world task 'vqa'"):
        tool_use_samples("vqa", "train", 1)


def test_tools_commands_list_and_write_traces(tmp_path, capsys):
    assert main(["tools", "list"]) == 0
    assert "| count | `Count ( object )` | Count the objects that fit a phrase. |" in capsys.readouterr().out
    assert main(["tools", "traces", "--tasks", "iconqa", "--n", "3", "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "tools_train.json").read_text())
    assert len(records) == 3 and [t["from"] for t in records[0]["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert (tmp_path / records[0]["image"]).exists()


@pytest.fixture(scope="module")
def world_checkpoint(tmp_path_factory):
    from mmtune.world.model import build_base_model

    path = tmp_path_factory.mktemp("world_random")
    build_base_model("tiny", seed=0).save_pretrained(path)
    world_processor().save_pretrained(path)
    return path


@pytest.mark.parametrize("mode", ["decision", "controller"])
def test_eval_tools_scores_a_task_through_the_loop_and_counts_its_calls(world_checkpoint, tmp_path, capsys, mode):
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(world_checkpoint), "--tasks", "world_iconqa", "--n", "4", "--tools",
            "--tool-mode", mode, "--max-calls", "2", "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)["world_iconqa"]
    tools = result["tools"]
    assert tools["mode"] == mode and tools["format"] == "dsl" and tools["questions"] == 4
    assert tools["answers"] + sum(tools["failures"].values()) == 4
    assert result["counts"]["samples"] == 4 and result["metric"] == "exact_match"
    rows = [json.loads(line) for line in (out / "world_iconqa.samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all((r["raw"] is None) != (r["failure"] is None) for r in rows)
    steps = [json.loads(line) for line in (out / "world_iconqa.tools.jsonl").read_text().splitlines()]
    assert {s["id"] for s in steps} == {r["id"] for r in rows} and all("prompt" in s and "output" in s for s in steps)
    assert json.loads((out / "results.json").read_text())["tools"] is True


def test_eval_tools_refuses_cot_and_names_the_options(world_checkpoint, capsys):
    assert main(["eval", "--model", str(world_checkpoint), "--tasks", "world_iconqa", "--n", "2", "--tools", "--cot"]) == 2
    assert "drop --cot / --shots" in capsys.readouterr().err
