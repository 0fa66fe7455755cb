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
