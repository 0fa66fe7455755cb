"""Validation: find every record that would crash or silently corrupt training, before it starts.

Each check looks at one sample and yields ``(reason, detail)``; the report lists every bad
record by id, so a user fixes the data once instead of once per crash.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from mmtune.data.sample import Sample

# Reasons, as they appear in reports and ``counts()``.
MISSING_IMAGE = "missing_image"
EMPTY_IMAGE = "empty_image"
CORRUPT_IMAGE = "corrupt_image"
ESCAPES_ROOT = "path_escapes_root"
IMAGE_COUNT = "image_count_mismatch"
NO_ASSISTANT = "no_assistant_turn"
EMPTY_ASSISTANT = "empty_assistant_turn"
TOO_LONG = "too_long"
ANSWER_TRUNCATED = "answer_truncated"

MAX_LISTED = 50

Check = Callable[[Sample, "Path | None"], Iterable[tuple[str, str]]]


class DataValidationError(ValueError):
    """Some records are invalid; the message lists them and how to proceed."""


@dataclass(frozen=True)
class Issue:
    sample_id: str
    reason: str
    detail: str


@dataclass
class ValidationReport:
    """Every invalid record with its reason, and the samples that passed every check."""

    total: int
    issues: list[Issue] = field(default_factory=list)
    valid_samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def invalid_ids(self) -> list[str]:
        return list(dict.fromkeys(i.sample_id for i in self.issues))

    def counts(self) -> dict[str, int]:
        """Number of records failing each reason (a record can fail several)."""
        return dict(Counter(reason for _, reason in dict.fromkeys((i.sample_id, i.reason) for i in self.issues)))

    def table(self, limit: int | None = MAX_LISTED) -> str:
        shown = self.issues if limit is None else self.issues[:limit]
        width = max([len("id"), *(len(i.sample_id) for i in shown)])
        lines = [f"{'id':<{width}}  {'reason':<22}  detail"]
        lines += [f"{i.sample_id:<{width}}  {i.reason:<22}  {i.detail}" for i in shown]
        if len(self.issues) > len(shown):
            lines.append(f"... and {len(self.issues) - len(shown)} more")
        return "\n".join(lines)

    def raise_if_invalid(self) -> None:
        if self.ok:
            return
        raise DataValidationError(
            f"{len(self.invalid_ids)} of {self.total} records are invalid:\n{self.table()}\n"
            "Fix these records, or pass --skip-invalid to drop them and train on the rest."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "valid": len(self.valid_samples),
            "invalid": len(self.invalid_ids),
            "counts": self.counts(),
            "issues": [vars(i) for i in self.issues],
        }


def _root_of(sample: Sample, root: Path | None) -> Path | None:
    if root is not None:
        return root
    return Path(sample.meta["root"]) if sample.meta.get("root") else None


def check_images(sample: Sample, root: Path | None) -> Iterable[tuple[str, str]]:
    """Each image path stays inside the root (symlinks resolved), exists, is non-empty and decodes."""
    for k, ref in enumerate(sample.images):
        if isinstance(ref, Image.Image):
            continue
        path = Path(ref)
        if root is not None and not path.resolve().is_relative_to(root.resolve()):
            # Never opened: reading outside the data root is what this check prevents.
            yield ESCAPES_ROOT, f"image {k} {ref} resolves to {path.resolve()}, outside {root}"
            continue
        if not path.is_file():
            yield MISSING_IMAGE, f"image {k} {ref} does not exist"
        elif path.stat().st_size == 0:
            yield EMPTY_IMAGE, f"image {k} {ref} is an empty (zero-byte) file"
        else:
            try:
                with Image.open(path) as im:
                    im.verify()
                # verify() skips pixel data; a truncated file only fails when decoded.
                with Image.open(path) as im:
                    im.load()
            except Exception as e:  # PIL raises many types for bad files
                yield CORRUPT_IMAGE, f"image {k} {ref} cannot be decoded ({type(e).__name__}: {e})"


def check_placeholders(sample: Sample, root: Path | None) -> Iterable[tuple[str, str]]:
    """Every image part consumes exactly one image."""
    if sample.num_image_parts != len(sample.images):
        yield IMAGE_COUNT, f"{sample.num_image_parts} image placeholders but {len(sample.images)} images"


def check_assistant(sample: Sample, root: Path | None) -> Iterable[tuple[str, str]]:
    """There is something to learn: at least one assistant turn, none of them empty."""
    answers = sample.text_of("assistant")
    if not answers:
        yield NO_ASSISTANT, "no assistant turn to train on"
    for k, text in enumerate(answers):
        if not text.strip():
            yield EMPTY_ASSISTANT, f"assistant turn {k} is empty"


CHECKS: list[Check] = [check_images, check_placeholders, check_assistant]


def _length_issues(sample: Sample, processor: Any, max_length: int) -> Iterable[tuple[str, str]]:
    """Collate the sample alone exactly as training will, so the verdict matches the collator's."""
    from mmtune.data.collate import IGNORE_INDEX, ImageTruncationError, SFTCollator

    try:
        batch = SFTCollator(processor, max_length=max_length)([sample])
    except ImageTruncationError as e:
        yield TOO_LONG, f"{e.length} tokens with image tokens up to {e.image_end}, over max_length={max_length}"
        return
    if not (batch["labels"] != IGNORE_INDEX).any():
        yield ANSWER_TRUNCATED, f"max_length={max_length} cuts every answer token"


def validate_samples(
    samples: Sequence[Sample],
    *,
    processor: Any = None,
    root: str | Path | None = None,
    max_length: int | None = None,
) -> ValidationReport:
    """Check every sample; with ``processor`` and ``max_length`` also its tokenized length.

    ``root`` overrides each sample's own data root (``meta["root"]``, set by the readers).
    """
    report = ValidationReport(total=len(samples))
    root_path = Path(root) if root is not None else None
    for sample in samples:
        found = [r for check in CHECKS for r in check(sample, _root_of(sample, root_path))]
        if not found and processor is not None and max_length is not None:
            found = list(_length_issues(sample, processor, max_length))
        report.issues += [Issue(sample.id, reason, detail) for reason, detail in found]
        if not found:
            report.valid_samples.append(sample)
    return report
