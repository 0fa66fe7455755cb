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
    lines = err.strip().splitlines()
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
