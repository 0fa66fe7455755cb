"""The layers of docs/ARCHITECTURE.md, checked on the code: each area imports only itself, the
foundation modules and the areas below it. Imports inside functions count too (the CLI glue puts
its heavy imports there), so a ``commands.py`` is held to its own area's row."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmtune"
FOUNDATION = {"registry", "files", "lazy", "config", "tracking", "model_card"}  # plain helpers any layer may use

# area -> the areas it may import, lowest first. methods acts on models and data and writes its
# specs in the strategies' syntax (CoT tuning reads the world's ground-truth rationales, tool-use
# tuning the tools' traces); eval sits
# below recipes so pretraining can score its own base.
# tools (the tool-using loop) sits below eval so `mmtune eval --tools` can run it; it takes eval
# tasks and the generation function as arguments.
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "strategies": {"models"},
    "data": {"models"},
    "world": {"models", "data"},
    "methods": {"models", "strategies", "data", "world", "tools"},
    "tools": {"models", "strategies", "data", "world"},
    "eval": {"models", "strategies", "data", "world", "tools"},
    "recipes": {"models", "strategies", "data", "world", "methods", "eval", "tools"},
    "bench": {"models", "strategies", "data", "world", "methods", "eval", "recipes", "tools"},
}


def _area(module: str) -> str:
    return module.split(".")[1]


def imported_areas(path: Path) -> set[tuple[str, int]]:
    """``(area, line)`` of every ``mmtune.<area>`` import in ``path``, wherever it stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "mmtune"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mmtune" and len(parts) > 1:
                found.add((_area(name), node.lineno))
    return found


def layer_violations(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        area = rel.parts[1].removesuffix(".py") if len(rel.parts) > 2 else None
        if area not in ALLOWED:  # cli.py and the foundation modules
            continue
        for target, line in sorted(imported_areas(path)):
            if target not in ALLOWED[area] | FOUNDATION | {area}:
                out.append(f"{rel}:{line}: {area} imports mmtune.{target}")
    return out


def test_every_area_imports_only_the_layers_below_it():
    assert layer_violations() == []


def test_every_area_is_in_the_table():
    areas = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert areas <= set(ALLOWED), f"add {sorted(areas - set(ALLOWED))} to ALLOWED (and to docs/ARCHITECTURE.md)"


def test_a_back_import_is_reported_with_file_and_line(tmp_path):
    pkg = tmp_path / "mmtune"
    (pkg / "models").mkdir(parents=True)
    (pkg / "models" / "bad.py").write_text("import os\n\ndef f():\n    from mmtune.eval.runner import evaluate\n")
    assert layer_violations(pkg) == ["mmtune/models/bad.py:4: models imports mmtune.eval"]
