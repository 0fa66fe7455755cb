"""Finding and reading a benchmark's released files; a missing file names the path expected.

Image names come from the benchmark's own files, so each is joined under the folder the release
keeps its images in and refused when it leaves that folder ("../", an absolute path, a symlink
out), as the training data's validation refuses paths outside the data root. The folder itself
may be a symlink (a shared COCO copy): only what a record names is confined.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmtune.data.sample import Sample, user_turn


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else an error naming it and what it should contain."""
    if not path.exists():
        raise FileNotFoundError(f"{what}: expected {path} (check root= and the benchmark's release layout)")
    return path


def first_existing(candidates: Sequence[Path], what: str) -> Path:
    """The first of ``candidates`` that exists (the layouts a release is found in), else an error naming all."""
    for path in candidates:
        if path.exists():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"{what}: expected one of {tried} (check root= and the benchmark's release layout)")


def read_json(path: Path, what: str) -> Any:
    with open(require(path, what), encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{what}: {path} is not valid JSON ({e}); re-extract it from the release") from e


def image_inside(folder: Path, name: str | Path, where: str) -> Path:
    """``folder / name``, or an error naming ``where`` (file and record) when it resolves outside ``folder``."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"{where}: image {str(name)!r} resolves to {path.resolve()}, outside the image folder "
                         f"{folder}; a benchmark file may only name images inside it (fix or drop that record)")
    return path


def nonempty(samples: list[Sample], what: str, expected: str) -> list[Sample]:
    """``samples``, or an error saying which layout was expected: an empty task would score 0 silently."""
    if not samples:
        raise ValueError(f"{what}: found no samples; expected {expected}")
    return samples


def question_sample(sample_id: str, question: str, image: Path | None, **meta: Any) -> Sample:
    """A one-turn sample asking ``question`` about ``image`` (none for text-only questions)."""
    return Sample(id=sample_id, messages=[user_turn(question, n_images=1 if image else 0)],
                  images=[image] if image else [], meta=meta)
