"""Validation: find every record that would crash or silently corrupt training, before it starts.

Each check looks at one sample and yields ``(reason, detail)``; the report lists every bad
record by id and source, so a user fixes the data once instead of once per crash. Images are
decoded in full and, given the processor, every record is encoded by the collator training
uses: whatever would fail at step N fails here, before step 0.
"""
from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image, ImageFile

from mmtune.data.sample import Sample, content_parts

# Reasons, as they appear in reports and ``counts()``.
MISSING_IMAGE = "missing_image"
EMPTY_IMAGE = "empty_image"
CORRUPT_IMAGE = "corrupt_image"
ESCAPES_ROOT = "path_escapes_root"
IMAGE_COUNT = "image_count_mismatch"
NO_ASSISTANT = "no_assistant_turn"
EMPTY_ASSISTANT = "empty_assistant_turn"
IMAGE_TOO_LARGE = "image_too_large"
BAD_TEXT = "unencodable_text"
ENCODE_FAILED = "encode_failed"
TOO_LONG = "too_long"
ANSWER_TRUNCATED = "answer_truncated"

MAX_LISTED = 50
# 40 MP: every processor mmtune supports downsizes far below it (Qwen2-VL's released processors keep
# at most 16,384 tokens of 28x28 = 12.8 MP), 8K frames (33 MP) and 36 MP camera photos pass, and one
# decoded RGB copy stays under 120 MB.
# Pillow only warns from 89.5 MP and refuses from 179 MP, when one image already costs ~0.5-1 GB.
DEFAULT_MAX_PIXELS = 40_000_000
# Records collated together when encoding; a failing chunk is re-collated record by record.
_ENCODE_CHUNK = 32


class DataValidationError(ValueError):
    """Some records are invalid; the message lists them and how to proceed."""


@dataclass(frozen=True)
class Issue:
    sample_id: str
    reason: str
    detail: str
    source: str = ""  # where the record is: "file:line", "file: row i" (set by the readers)


@dataclass(frozen=True)
class Limits:
    """What every check may need besides the sample: the data root and the pixel limit."""

    root: Path | None
    max_pixels: int


Check = Callable[[Sample, Limits], Iterable[tuple[str, str]]]


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
        lines += [f"{i.sample_id:<{width}}  {i.reason:<22}  {i.detail}" + (f"  ({i.source})" if i.source else "")
                  for i in shown]
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


def _decode_issues(label: str, open_image: Callable[[], Image.Image], max_pixels: int) -> list[tuple[str, str]]:
    """Open ``open_image()`` twice: header + verify(), then a full load(), which alone sees truncated pixels.

    The pixel limit is checked on the header, before any pixel is decoded.
    """
    too_large = f"over the limit of {max_pixels / 1e6:.1f} MP; downscale it, or raise --max-pixels (validation.max_pixels)"
    try:
        with warnings.catch_warnings():
            # Over the limit is reported as a record issue, not as Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image() as im:
                pixels = im.width * im.height
                if pixels > max_pixels:
                    return [(IMAGE_TOO_LARGE, f"{label} is {im.width}x{im.height} = {pixels / 1e6:.1f} MP, {too_large}")]
                im.verify()
            with open_image() as im:
                im.load()
    except Image.DecompressionBombError as e:
        return [(IMAGE_TOO_LARGE, f"{label}: {e}; {too_large}")]
    except Exception as e:  # PIL raises many types for bad files
        return [(CORRUPT_IMAGE, f"{label} cannot be decoded ({type(e).__name__}: {e})")]
    return []


def _undecoded_bytes(image: Image.Image) -> bytes | None:
    """The encoded bytes behind an image opened lazily (from parquet / HF bytes), else None.

    Decoding a fresh copy keeps the sample's own image undecoded, so validating a large
    dataset does not hold every decoded image in memory.
    """
    if not (isinstance(image, ImageFile.ImageFile) and image.tile and image.fp is not None):
        return None
    fp = image.fp
    position = fp.tell()
    try:
        fp.seek(0)
        return fp.read()
    finally:
        fp.seek(position)


def _in_memory_issues(k: int, image: Image.Image, max_pixels: int) -> Iterable[tuple[str, str]]:
    """An image read from embedded bytes is decoded from a fresh copy; a decoded one has only a size to check."""
    data = _undecoded_bytes(image)
    if data is not None:
        yield from _decode_issues(f"image {k} (embedded bytes)", lambda: Image.open(io.BytesIO(data)), max_pixels)
    elif isinstance(image, ImageFile.ImageFile) and image.tile:
        yield CORRUPT_IMAGE, f"image {k} (in memory) was never decoded and its file is closed"
    elif image.width * image.height > max_pixels:
        yield IMAGE_TOO_LARGE, (f"image {k} (in memory) is {image.width}x{image.height}, over the limit of "
                                f"{max_pixels / 1e6:.1f} MP; downscale it, or raise --max-pixels (validation.max_pixels)")


def check_images(sample: Sample, limits: Limits) -> Iterable[tuple[str, str]]:
    """Each image stays inside the root (symlinks resolved), exists, is under the pixel limit and decodes fully."""
    root = limits.root
    for k, ref in enumerate(sample.images):
        if isinstance(ref, Image.Image):
            yield from _in_memory_issues(k, ref, limits.max_pixels)
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
            yield from _decode_issues(f"image {k} {ref}", lambda: Image.open(path), limits.max_pixels)


def check_placeholders(sample: Sample, limits: Limits) -> Iterable[tuple[str, str]]:
    """Every image part consumes exactly one image."""
    if sample.num_image_parts != len(sample.images):
        yield IMAGE_COUNT, f"{sample.num_image_parts} image placeholders but {len(sample.images)} images"


def check_text(sample: Sample, limits: Limits) -> Iterable[tuple[str, str]]:
    """Every text part is a string a tokenizer can encode: UTF-8, so no lone surrogate like "\\ud800"."""
    for j, message in enumerate(sample.messages):
        for k, part in enumerate(content_parts(message)):
            if part.get("type") != "text":
                continue
            text = part.get("text")
            if not isinstance(text, str):
                yield BAD_TEXT, f"message {j} part {k}: text is {type(text).__name__}, not a string"
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                yield BAD_TEXT, (
                    f"message {j} part {k}: character {e.start} is {text[e.start]!r}, a lone surrogate no "
                    "tokenizer can encode (often a broken \\u escape); remove or replace it"
                )


def check_assistant(sample: Sample, limits: Limits) -> Iterable[tuple[str, str]]:
    """There is something to learn: at least one assistant turn, none of them empty."""
    try:
        answers = sample.text_of("assistant")
    except TypeError:  # a text part that is not a string: check_text names it
        return
    if not answers:
        yield NO_ASSISTANT, "no assistant turn to train on"
    for k, text in enumerate(answers):
        if not text.strip():
            yield EMPTY_ASSISTANT, f"assistant turn {k} is empty"


CHECKS: list[Check] = [check_images, check_placeholders, check_text, check_assistant]


def _encode_one(collate: Any, sample: Sample) -> list[tuple[str, str]]:
    """Collate one sample alone, as training will; any failure becomes the record's issue."""
    from mmtune.data.collate import ImageTruncationError

    try:
        return _label_issues(collate([sample]), 0, collate.max_length)
    except ImageTruncationError as e:
        return [(TOO_LONG, f"{e.length} tokens with image tokens up to {e.image_end}, over max_length={e.max_length}")]
    except Exception as e:  # whatever the processor raises would stop training at this record
        return [(ENCODE_FAILED, f"the processor cannot encode it ({type(e).__name__}: {e})")]


def _label_issues(batch: dict[str, Any], row: int, max_length: int | None) -> list[tuple[str, str]]:
    from mmtune.data.collate import IGNORE_INDEX

    if max_length is not None and not (batch["labels"][row] != IGNORE_INDEX).any():
        return [(ANSWER_TRUNCATED, f"max_length={max_length} cuts every answer token")]
    return []


def _encoding_issues(samples: Sequence[Sample], processor: Any, max_length: int | None,
                     collate: Any = None) -> list[list[tuple[str, str]]]:
    """Per sample, what the training collator reports; collated in chunks, a failing chunk one by one."""
    from mmtune.data.collate import SFTCollator

    collate = collate or SFTCollator(processor, max_length=max_length)
    found: list[list[tuple[str, str]]] = []
    for start in range(0, len(samples), _ENCODE_CHUNK):
        chunk = samples[start:start + _ENCODE_CHUNK]
        try:
            batch = collate(chunk)
        except Exception:
            found += [_encode_one(collate, s) for s in chunk]
        else:
            found += [_label_issues(batch, row, max_length) for row in range(len(chunk))]
    return found


def check_max_pixels(max_pixels: int) -> int:
    """``max_pixels`` if usable: positive and within Pillow's own decompression-bomb limit."""
    ceiling = Image.MAX_IMAGE_PIXELS or float("inf")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or not 0 < max_pixels <= ceiling:
        raise ValueError(
            f"--max-pixels / validation.max_pixels is {max_pixels!r}; use a whole number of pixels from 1 up to "
            f"Pillow's decompression-bomb limit ({ceiling:,}); the default is {DEFAULT_MAX_PIXELS:,}"
        )
    return max_pixels


def validate_samples(
    samples: Sequence[Sample],
    *,
    processor: Any = None,
    root: str | Path | None = None,
    max_length: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    collator: Any = None,
) -> ValidationReport:
    """Check every sample; with ``processor``, also encode it with the training collator (and
    check its length against ``max_length``).

    ``collator``: the ``SFTCollator`` (same processor and ``max_length``) that will train on the
    samples; with its cache on, each valid sample's encoding is kept there, so training does not
    encode it again.

    ``root`` overrides each sample's own data root (``meta["root"]``, set by the readers).
    """
    check_max_pixels(max_pixels)
    root_path = Path(root) if root is not None else None
    found = [[r for check in CHECKS for r in check(s, Limits(_root_of(s, root_path), max_pixels))] for s in samples]
    if processor is not None:
        clean = [k for k, issues in enumerate(found) if not issues]
        for k, issues in zip(clean, _encoding_issues([samples[k] for k in clean], processor, max_length, collator)):
            found[k] = issues
    report = ValidationReport(total=len(samples))
    for sample, issues in zip(samples, found):
        source = str(sample.meta.get("source", ""))
        report.issues += [Issue(sample.id, reason, detail, source) for reason, detail in issues]
        if not issues:
            report.valid_samples.append(sample)
    return report
