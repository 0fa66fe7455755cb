"""`mmtune eval` and `mmtune tasks` end to end on a saved tiny checkpoint."""
import json

import pytest

from mmtune.cli import main
from mmtune.models.tiny import save_tiny
from mmtune.world.tasks import WORLD_TASKS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny("llava", tmp_path_factory.mktemp("ckpt") / "tiny_llava")


def test_eval_command_writes_results_and_resumes(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(checkpoint), "--tasks", "world_itm,world_sciqa", "--n", "4",
            "--batch-size", "4", "--out", str(out), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"world_itm", "world_sciqa"}
    assert printed["world_sciqa"]["chance"] == WORLD_TASKS["sciqa"].chance and printed["world_sciqa"]["counts"]["samples"] == 4
    saved = json.loads((out / "results.json").read_text())
    assert saved["tasks"]["world_itm"]["scores"] == printed["world_itm"]["scores"]
    assert (out / "results.md").read_text().count("| world_") == 2
    assert len((out / "world_sciqa.samples.jsonl").read_text().splitlines()) == 4
    # A rerun takes every answer from the cache in <out>/cache.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["world_itm"]["counts"]["cached"] == 4 and again["world_itm"]["scores"] == printed["world_itm"]["scores"]


def test_eval_command_errors_name_the_option(checkpoint, capsys):
    assert main(["eval", "--model", str(checkpoint), "--tasks", "vqav2"]) == 2
    assert "--root vqav2=DIR" in capsys.readouterr().err
    assert main(["eval", "--model", str(checkpoint), "--tasks", "world_itm", "--root", "oops"]) == 2
    assert "TASK=DIR" in capsys.readouterr().err


def test_tasks_command_lists_metric_and_chance(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["world_sciqa"]["metric"] == "accuracy"
    assert rows["world_sciqa"]["chance"] == WORLD_TASKS["sciqa"].chance
    assert rows["vqav2"]["needs_root"] and rows["pope"]["metric"] == "f1"
    assert main(["tasks"]) == 0
    chance = WORLD_TASKS["refcoco"].chance
    assert f"| world_refcoco | acc@0.5 | {chance:.1f} | downstream |" in capsys.readouterr().out
