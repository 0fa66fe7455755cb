"""User errors through the ``mmtune`` entry point: one line naming the file/key/option and what to
do, exit code 2, no traceback (issue 14, item 6)."""
from __future__ import annotations

import pytest

from mmtune.cli import build_parser, main

COMMANDS_THAT_LOAD_WEIGHTS = ("train", "eval", "infer", "export", "inspect")


@pytest.fixture
def config(tmp_path):
    """A config that loads (model and data need not exist: config errors come first)."""
    path = tmp_path / "config.yaml"
    path.write_text("model: base\ndata:\n  - {path: train.jsonl}\ntraining: {max_steps: 1}\n")
    return path


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # Only transformers' progress bars ("Loading weights: ...") may share stderr with the message.
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mmtune {argv[0]}: error: ")
    return lines[0]


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    # Line 3 opens a flow mapping that never closes; PyYAML notices on line 4.
    path.write_text("model: base\ndata:\n  - {path: train.jsonl\ntraining: {max_steps: 1}\n")
    err = _one_line_error(capsys, ["train", str(path)])
    assert f"{path}:4: invalid YAML" in err
    assert "opened on line 3" in err


def test_config_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes("model: b\xe4se\n".encode("latin-1"))
    err = _one_line_error(capsys, ["train", str(path)])
    assert str(path) in err and "UTF-8" in err


@pytest.mark.parametrize(
    "override, expected",
    [
        # A mapping where a list of sources is expected: the key, the type, and the fix.
        ("data={path: x}", "config key data must be a list; got one mapping, write it in brackets"),
        # Text where a mapping of group -> learning rate is expected.
        ("training.group_lr=abc", "config key training.group_lr must be a mapping"),
        ("training.group_lr={projector: abc}", "config key training.group_lr.projector must be a number, got 'abc'"),
        ("training.lr=nan", "config key training.lr must be a finite number, got nan"),
        ("training.lr=inf", "config key training.lr must be a finite number, got inf"),
        ("training.lr=-1", "training.lr must be > 0"),
        ("training.max_steps=many", "config key training.max_steps must be an integer, got 'many'"),
        ("data=[{path: x}", "override 'data=[{path: x}': the value is not valid YAML"),
        ("model={a: 1}", "config key model must be a single value"),
        ("data=[{pth: x}]", "unknown config key(s) data[0].pth"),
        ("data=[x.jsonl]", "config key data[0] must be a mapping with keys from path, root"),
    ],
)
def test_override_of_the_wrong_type_names_key_and_type(config, capsys, override, expected):
    err = _one_line_error(capsys, ["train", str(config), "--set", override])
    assert expected in err


def test_override_below_a_scalar_is_named(config, capsys):
    err = _one_line_error(capsys, ["train", str(config), "--set", "training=3", "--set", "training.lr=1"])
    assert "override 'training.lr=1': training was set to a value above" in err


def test_comma_lists_are_read_as_yaml_items():
    from dataclasses import dataclass, field

    from mmtune.config import load_config

    @dataclass
    class Grid:
        seeds: list[int] = field(default_factory=list)
        tags: list[str] = field(default_factory=list)

    grid = load_config(Grid, None, ["seeds=0,1", "tags=yes,no"])
    assert grid.seeds == [0, 1]
    assert grid.tags == ["yes", "no"]  # text items stay text (YAML would read them as booleans)


def test_allow_pickle_is_offered_by_every_command_that_loads_weights():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS_THAT_LOAD_WEIGHTS:
        help_text = sub.choices[name].format_help()
        assert "--allow-pickle" in help_text and "can run code" in help_text, name


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 2-step SFT run on the tiny LLaVA with a checkpoint after each step, then checkpoint-2 removed."""
    import shutil

    from mmtune.models.tiny import save_tiny
    from tests.recipes.conftest import make_samples, write_messages_jsonl

    root = tmp_path_factory.mktemp("run")
    base = save_tiny("llava", root / "base", seed=0)
    data = write_messages_jsonl(root / "train.jsonl", make_samples(4, root=root / "img"))
    config = root / "config.yaml"
    config.write_text(
        f"model: {base}\ndata: [{{path: {data}}}]\nstrategy: projector\noutput_dir: {root / 'out'}\n"
        "training: {max_steps: 2, batch_size: 2, save_steps: 1, logging_steps: 1}\n"
    )
    assert main(["train", str(config)]) == 0
    shutil.rmtree(root / "out" / "checkpoint-2")  # --resume continues from checkpoint-1
    return config, root / "out" / "checkpoint-1"


def _rng_state_with(checkpoint, extra):
    """Rewrite the checkpoint's RNG state with one more entry the Trainer ignores but unpickling must build."""
    import torch

    state = torch.load(checkpoint / "rng_state.pth", weights_only=False)
    torch.save({**state, "extra": extra}, checkpoint / "rng_state.pth")


def test_refused_resume_pickle_names_the_file_and_the_flag(trained_run, capsys):
    import shutil
    from fractions import Fraction

    config, checkpoint = trained_run
    saved = checkpoint.parent / "rng_state.saved"
    shutil.copy(checkpoint / "rng_state.pth", saved)
    try:
        # fractions.Fraction is outside torch's weights-only allowlist, as any custom class would be.
        _rng_state_with(checkpoint, Fraction(1, 3))
        err = _one_line_error(capsys, ["train", str(config), "--resume"])
        assert f"{checkpoint / 'rng_state.pth'}: a pickle naming fractions.Fraction" in err
        assert "--allow-pickle" in err
        assert main(["train", str(config), "--resume", "--allow-pickle"]) == 0
        assert (checkpoint.parent / "checkpoint-2").is_dir()  # resumed and trained step 2
    finally:
        shutil.move(saved, checkpoint / "rng_state.pth")


def test_unpickling_error_from_torch_is_one_sentence(monkeypatch, tmp_path, capsys):
    # Any refusal the checks above do not anticipate still ends in one line that names the flag.
    import pickle

    import mmtune.strategies.commands as commands

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed.\n(1) ...\n(2) ...")

    monkeypatch.setattr(commands, "inspect_model", refuse)
    err = _one_line_error(capsys, ["inspect", str(tmp_path)])
    assert "was refused" in err and "--allow-pickle" in err
