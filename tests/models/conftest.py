"""Tiny models shared by the models tests; each family is built once per session."""
from __future__ import annotations

import pytest
from PIL import Image

from mmtune.models.tiny import build_tiny, tiny_families

_CACHE: dict[str, tuple] = {}


def pytest_generate_tests(metafunc):
    """Every test taking ``family`` runs once per tiny family: a new family costs no test edits."""
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", tiny_families())


def tiny_model(family: str) -> tuple:
    """The family's tiny (model, processor), built once and shared: tests must not modify it."""
    if family not in _CACHE:
        _CACHE[family] = build_tiny(family, seed=0)
    return _CACHE[family]


@pytest.fixture
def tiny(family):
    return tiny_model(family)


@pytest.fixture
def image():
    """A real RGB image, not square, so resizing paths run."""
    im = Image.new("RGB", (40, 30), (20, 120, 220))
    for x in range(10, 20):
        for y in range(5, 15):
            im.putpixel((x, y), (230, 30, 30))
    return im


CONVERSATION = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the square?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "The square is red."}]},
]
