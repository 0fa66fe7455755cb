"""`mmtune strategies` and `mmtune inspect` through the real CLI entry point."""

import json

import pytest

from mmtune.cli import main
from mmtune.models.tiny import save_tiny
from mmtune.strategies import list_strategies


def test_strategies_table_and_json(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "top(k=4)" in out and "layers(start=?, end=?)" in out and "reparameterization" in out
    assert main(["strategies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [i.name for i in list_strategies()]
    lora = next(r for r in rows if r["name"] == "lora")
    assert lora["args"]["r"] == {"default": 8, "help": "rank of the update"}
    assert lora["args"]["groups"]["default"] == ["llm"]


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny("llava", tmp_path_factory.mktemp("inspect") / "llava")


def test_inspect_json_with_strategy(llava_dir, capsys):
    assert main(["inspect", str(llava_dir), "--strategy", "last+projector", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "llava" and report["num_layers"] == 2
    groups = report["groups"]
    assert groups["projector"]["path"] == "model.multi_modal_projector"
    assert groups["projector"]["trainable"] == groups["projector"]["params"] == 32 * 64 + 64 + 64 * 64 + 64
    assert groups["language_layers"]["trainable"] * 2 == groups["language_layers"]["params"]
    assert groups["vision_encoder"]["trainable"] == 0 and groups["lm_head"]["trainable"] == 0
    assert report["strategy"]["spec"] == "last+projector"


def test_inspect_table(llava_dir, capsys):
    assert main(["inspect", str(llava_dir)]) == 0
    out = capsys.readouterr().out
    assert "LlavaForConditionalGeneration" in out and "model.language_model.layers" in out
    assert "trainable" not in out


def test_inspect_bad_spec_fails_before_loading(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing"), "--strategy", "lora(rank=2)"]) == 2
    assert "unknown argument(s) rank" in capsys.readouterr().err
