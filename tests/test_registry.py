"""The shared name -> item registry behind families, template pools and world tasks."""
import pytest

from mmtune.models import get_family
from mmtune.registry import Registry


def test_register_lookup_and_errors_name_the_choices():
    reg: Registry[int] = Registry("widget")
    assert reg.register("b", 2) == 2 and reg.register("a", 1) == 1
    assert reg.lookup("a") == 1 and "b" in reg and sorted(reg) == ["a", "b"]
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 3)
    with pytest.raises(KeyError, match="unknown widget 'c'; known: a, b"):
        reg.lookup("c")


def test_family_registry_lists_builtin_families_on_a_typo():
    with pytest.raises(KeyError, match="unknown model family 'lava'; known: .*llava.*qwen2_vl"):
        get_family("lava")


def test_builtins_load_on_first_read_and_a_package_entry_imports_every_module(tmp_path, monkeypatch):
    pkg = tmp_path / "plugs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("from registry_under_test import REG\nREG.register('one', 1)\n")
    (pkg / "two.py").write_text("from registry_under_test import REG\nREG.register('two', 2)\n")
    (tmp_path / "registry_under_test.py").write_text(
        "from mmtune.registry import Registry\nREG = Registry('plug', builtins=('plugs.*',))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import registry_under_test

    reg = registry_under_test.REG
    assert dict.__len__(reg) == 0  # nothing imported yet
    assert sorted(reg) == ["one", "two"] and reg["two"] == 2 and "one" in reg
    with pytest.raises(KeyError, match="unknown plug 'three'; known: one, two"):
        reg.lookup("three")
