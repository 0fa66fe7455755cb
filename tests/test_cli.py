"""The ``mmtune`` command as a whole: every subcommand registered, fast start, clear errors."""
import subprocess
import sys

import pytest

from mmtune.cli import build_parser, main

SUBCOMMANDS = {"strategies", "inspect", "data", "train", "infer", "export", "pretrain", "world",
               "eval", "tasks", "methods", "bench", "align", "prefs", "tools", "chat"}


def test_every_subcommand_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == SUBCOMMANDS


def test_help_does_not_import_torch():
    # Heavy libraries load inside the handlers, so `mmtune --help` and typos answer instantly.
    code = "import sys, mmtune.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_subcommand_lists_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trian"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'trian'" in err and "train" in err


def test_bad_input_is_a_one_line_error_not_a_traceback(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmtune inspect: error:") and "nope" in err and "Traceback" not in err
