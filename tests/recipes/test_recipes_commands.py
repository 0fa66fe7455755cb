"""The train / infer / export commands: errors name the bad option and list the valid ones."""
from __future__ import annotations

import pytest

from mmtune.cli import main


def _write_config(tmp_path, model_dir: str = "m", strategy: str = "projector", extra: str = "") -> str:
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {model_dir}\ndata: [{{path: {tmp_path / 'x.jsonl'}}}]\nstrategy: {strategy}\n{extra}")
    return str(path)


def test_unknown_config_key_lists_valid_keys(tmp_path, capsys):
    assert main(["train", _write_config(tmp_path, extra="training: {lrr: 1}\n")]) == 2
    err = capsys.readouterr().err
    assert "training.lrr" in err and "grad_accum" in err and "divergence_factor" in err


def test_missing_model_key_is_named(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data: [{path: x.jsonl}]\n")
    assert main(["train", str(path)]) == 2
    assert "config key model is required" in capsys.readouterr().err


def test_unknown_strategy_lists_valid_ones(tmp_path, tiny_dir, capsys):
    from tests.recipes.conftest import make_samples, write_messages_jsonl

    write_messages_jsonl(tmp_path / "x.jsonl", make_samples(2, root=tmp_path / "img"))
    config = _write_config(tmp_path, model_dir=str(tiny_dir), strategy="topp(k=2)")
    assert main(["train", config, "--set", f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "topp" in err and "lora" in err


def test_export_and_infer_commands(tmp_path, tiny_dir, capsys):
    from PIL import Image

    Image.new("RGB", (16, 16), "red").save(tmp_path / "red.png")
    assert main(["export", "--model", str(tiny_dir), "--out", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain" / "model.safetensors").is_file()
    assert main(["export", "--model", str(tiny_dir), "--out", str(tmp_path / "plain")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["infer", "--model", str(tmp_path / "plain"), "--image", str(tmp_path / "red.png"),
                 "--prompt", "what color", "--max-new-tokens", "3"]) == 0
    with pytest.raises(FileNotFoundError):
        main(["infer", "--model", str(tmp_path / "plain"), "--image", str(tmp_path / "nope.png"),
              "--prompt", "what color", "--debug"])
