"""Tiny models of every family, built once per session and deep-copied per test."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mmtune.models import resolve_groups
from mmtune.models.family import ModelGroups
from mmtune.models.tiny import build_tiny, tiny_families


def pytest_generate_tests(metafunc):
    """Every test taking ``family`` runs once per tiny family: a new family costs no test edits."""
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", tiny_families())


@dataclass
class Tiny:
    family: str
    model: Any
    processor: Any
    groups: ModelGroups

    def inputs(self, text: str = "what color is the circle", batch: int = 1) -> dict[str, torch.Tensor]:
        """A processed image+question batch (generation prompt added)."""
        rng = np.random.default_rng(0)
        images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(batch)]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out = self.processor(text=[prompt] * batch, images=[[im] for im in images], return_tensors="pt")
        out.pop("labels", None)  # PaliGemma's processor adds them; tests pass their own
        return dict(out)


_CACHE: dict[str, tuple[Any, Any]] = {}


def make_tiny(family: str) -> Tiny:
    if family not in _CACHE:
        _CACHE[family] = build_tiny(family, seed=0)
    model, processor = _CACHE[family]
    model = copy.deepcopy(model)
    return Tiny(family, model, processor, resolve_groups(model))


@pytest.fixture
def tiny():
    """``tiny(family)`` -> a fresh copy of that family's tiny model, processor and groups."""
    return make_tiny


@pytest.fixture
def llava() -> Tiny:
    return make_tiny("llava")
