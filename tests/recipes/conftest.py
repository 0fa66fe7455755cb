"""Fixtures for the recipe tests: a tiny LLaVA saved on disk and a few image+text samples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmtune.data.sample import Sample, assistant_turn, user_turn

COLORS = ("red", "green", "blue", "yellow", "purple", "orange")


def make_samples(n: int = 8, root: Path | None = None) -> list[Sample]:
    """``n`` one-image questions of varying length; images written under ``root`` when given."""
    out = []
    for i in range(n):
        color = COLORS[i % len(COLORS)]
        image = Image.new("RGB", (20 + i, 20), color)
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            image.save(root / f"{i}.png")
            image = str(root / f"{i}.png")
        question = "what color is the image" + " please" * (i % 3)
        out.append(Sample(f"s{i}", [user_turn(question), assistant_turn(f"the color is {color}")], [image]))
    return out


def write_messages_jsonl(path: Path, samples: list[Sample]) -> Path:
    """Samples with path images as messages JSONL (the data area's reader format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": s.id, "messages": s.messages, "images": s.images}) + "\n"
                            for s in samples))
    return path


@pytest.fixture
def samples() -> list[Sample]:
    return make_samples()


def load_plain(path: Path):
    """(model, processor) from a checkpoint dir with plain transformers."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny LLaVA saved once; loading it from disk lets delta checkpoints name their base model."""
    from mmtune.models.tiny import save_tiny

    return save_tiny("llava", tmp_path_factory.mktemp("tiny") / "llava", seed=0)


@pytest.fixture
def tiny_llava(tiny_dir):
    return load_plain(tiny_dir)
