"""Finding and reading a benchmark's released files; a missing file names the path expected."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmtune.data.sample import Sample, user_turn


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else an error naming it and what it should contain."""
    if not path.exists():
        raise FileNotFoundError(f"{what}: expected {path} (check root= and the benchmark's release layout)")
    return path


def read_json(path: Path, what: str) -> Any:
    with open(require(path, what), encoding="utf-8") as f:
        return json.load(f)


def question_sample(sample_id: str, question: str, image: Path | None, **meta: Any) -> Sample:
    """A one-turn sample asking ``question`` about ``image`` (none for text-only questions)."""
    return Sample(id=sample_id, messages=[user_turn(question, n_images=1 if image else 0)],
                  images=[image] if image else [], meta=meta)
