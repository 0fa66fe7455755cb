"""The environment is the one the suite was validated with: every package pinned in
constraints.txt that is installed has exactly the pinned version, and the core stack is installed.

A dependency's new release then changes nothing until a commit refreshes the pins
(``scripts/refresh-constraints.sh``), and a stale environment says which package is off.
"""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
CORE = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of each ``name==version`` line (comments and blanks skipped)."""
    pins: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"{path}:{n}: {line!r} is not a 'name==version' pin")
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def mismatches(pins: dict[str, str], installed: dict[str, str | None]) -> list[str]:
    """One message per pinned package whose installed version differs (None = not installed:
    an error only for the core stack). A local build tag is ignored: ``2.13.0+cpu`` is ``2.13.0``."""
    out = []
    for name, want in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            if name in CORE:
                out.append(f"{name}: pinned {want} in constraints.txt, not installed")
            continue
        if Version(have).public != Version(want).public:
            out.append(f"{name}: pinned {want} in constraints.txt, installed {have}")
    return out


def _installed(names) -> dict[str, str | None]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def test_installed_versions_are_the_pinned_ones():
    pins = read_pins(CONSTRAINTS)
    assert set(CORE) <= set(pins), f"constraints.txt must pin {CORE}"
    wrong = mismatches(pins, _installed(pins))
    assert not wrong, (
        "the environment differs from constraints.txt:\n  " + "\n  ".join(wrong)
        + '\nreinstall with: pip install -e ".[dev]" -c constraints.txt'
    )


def test_mismatch_names_the_package_and_both_versions():
    pins = {"transformers": "5.23.0", "torch": "2.13.0", "peft": "0.21.2"}
    got = mismatches(pins, {"transformers": "5.24.0", "torch": "2.13.0+cpu", "peft": None})
    assert got == [
        "peft: pinned 0.21.2 in constraints.txt, not installed",
        "transformers: pinned 5.23.0 in constraints.txt, installed 5.24.0",
    ]


def test_read_pins_refuses_a_range(tmp_path):
    bad = tmp_path / "c.txt"
    bad.write_text("# header\ntorch==2.13.0\ntransformers>=5\n")
    with pytest.raises(ValueError, match=re.escape("c.txt:3: 'transformers>=5'")):
        read_pins(bad)


def test_constraints_satisfy_pyproject_ranges():
    """The pins lie inside the ranges pyproject.toml declares for library users."""
    import tomllib

    project = tomllib.loads((CONSTRAINTS.parent / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = read_pins(CONSTRAINTS)
    for line in declared:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is a dependency but constraints.txt does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req.specifier}"
