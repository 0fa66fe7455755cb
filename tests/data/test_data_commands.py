"""``mmtune data validate``: exit codes, skip mode, JSON, length checks with a saved model."""
from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image

from mmtune.data import commands


def _run(argv: list[str]) -> int:
    # Only the data area's parser: these tests do not depend on other areas' commands.
    parser = argparse.ArgumentParser(prog="mmtune")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _record(rid: str, image: str) -> dict:
    return {"id": rid, "image": image,
            "conversations": [{"from": "human", "value": "<image>\nWhat color?"}, {"from": "gpt", "value": "red"}]}


@pytest.fixture
def data(tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "ok.png")
    path = tmp_path / "d.json"
    path.write_text(json.dumps([_record("good", "ok.png"), _record("bad", "missing.png")]))
    return path


def test_invalid_records_exit_1_and_are_listed(data, capsys):
    assert _run(["data", "validate", str(data)]) == 1
    out = capsys.readouterr().out
    assert "bad" in out and "missing_image" in out and "1 of 2 records are invalid" in out
    assert "good " not in out


def test_skip_invalid_exits_0_with_counts(data, capsys):
    assert _run(["data", "validate", str(data), "--skip-invalid"]) == 0
    assert "keep 1 (missing_image: 1)" in capsys.readouterr().out


def test_json_report(data, capsys):
    assert _run(["data", "validate", str(data), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == 2 and report["invalid"] == 1 and report["counts"] == {"missing_image": 1}
    assert report["issues"][0]["sample_id"] == "bad"


def test_valid_file_exits_0(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "d.json").write_text(json.dumps([_record("good", "ok.png")]))
    assert _run(["data", "validate", str(tmp_path / "d.json")]) == 0
    assert "all 1 records are valid" in capsys.readouterr().out


def test_max_length_with_a_saved_model(data, tmp_path, capsys):
    from mmtune.models.tiny import save_tiny

    model_dir = save_tiny("llava", tmp_path / "model")
    # The good record: 2 + 16 image tokens + question + turn markers; its image ends at token 18.
    assert _run(["data", "validate", str(data), "--model", str(model_dir), "--max-length", "10", "--json"]) == 1
    issues = json.loads(capsys.readouterr().out)["issues"]
    assert {(i["sample_id"], i["reason"]) for i in issues} == {("good", "too_long"), ("bad", "missing_image")}


def test_max_length_needs_a_model(data):
    with pytest.raises(ValueError, match="--max-length needs --model"):
        _run(["data", "validate", str(data), "--max-length", "10"])
