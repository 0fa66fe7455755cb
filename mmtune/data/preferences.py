"""Preference data: a prompt and the responses judged on it, read, checked and written.

Formats read (by their fields, from any file the SFT readers load: JSON list, JSONL, HF dataset
folder, parquet): TRL's vision preference records (``prompt``, ``chosen``, ``rejected``,
``images``; conversational or plain strings), LLaVA-style records (``image``, ``conversations``
holding the prompt, ``chosen``/``rejected`` strings, or POVID's ``rejected_conversations``),
RLAIF-V rows (``question``, ``chosen``, ``rejected``, ``image``) and KTO's unpaired records
(``prompt``, ``completion``, ``label``). Files are written in TRL's format.
Each response, made an SFT Sample with its prompt, passes the SFT checks before step 0.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from mmtune.data.readers import (
    IMAGE_PLACEHOLDER,
    _chat_messages,
    _image_ref,
    _llava_conversation,
    _split_placeholders,
    load_rows,
)
from mmtune.data.sample import ImageRef, Sample, assistant_turn, content_parts
from mmtune.data.validate import (
    DEFAULT_MAX_PIXELS,
    EMPTY_ASSISTANT,
    Issue,
    Limits,
    ValidationReport,
    _encoding_issues,
    check_images,
    check_max_pixels,
    check_placeholders,
    check_text,
)
from mmtune.files import atomic_write_text

logger = logging.getLogger(__name__)

IDENTICAL_RESPONSES = "identical_responses"
SIDES = ("chosen", "rejected")
# Fields a reader turns into the record itself; every other field is kept in ``meta``.
_RECORD_FIELDS = {"id", "image", "images", "prompt", "question", "conversations", "rejected_conversations",
                  "chosen", "rejected", "completion", "label", "meta"}


@dataclass
class Preference:
    """A prompt (chat turns with image parts, and their images) with the responses judged on it.

    A pair has ``chosen`` and ``rejected`` (``label`` None); a KTO unpaired record has
    ``chosen`` = its completion, ``rejected`` None and ``label`` True (desirable) or False.
    ``meta`` keeps how a pair was made (``construction``, ``image_corruption``) and a source's
    other fields. ``source`` ("file:line") and ``root`` (the folder its relative image paths
    resolved under) say where it was read; they are not part of the record's value.
    """

    id: str
    messages: list[dict[str, Any]]
    images: list[ImageRef] = field(default_factory=list)
    chosen: str | None = None
    rejected: str | None = None
    label: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False, repr=False)
    root: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.messages = [{**m, "content": content_parts(m)} for m in self.messages]
        if not self.messages or self.messages[-1].get("role") != "user":
            last = self.messages[-1].get("role") if self.messages else "nothing"
            raise ValueError(f"preference {self.id!r}: the prompt ends with {last}; it must end with the user "
                             "turn the responses answer")
        if self.chosen is None:
            raise ValueError(f"preference {self.id!r} has no chosen response (a KTO record's completion goes there)")
        if self.rejected is not None and self.label is not None:
            raise ValueError(f"preference {self.id!r} has both rejected and label; a pair has no label, "
                             "a KTO record has no rejected response")
        if self.rejected is None and not isinstance(self.label, bool):
            raise ValueError(f"preference {self.id!r}: label is {self.label!r}; a record without a rejected "
                             "response is KTO's unpaired kind and needs label true (desirable) or false")

    @property
    def is_paired(self) -> bool:
        return self.rejected is not None

    @property
    def sides(self) -> tuple[str, ...]:
        """The responses it holds: ``("chosen", "rejected")`` for a pair, ``("chosen",)`` for KTO."""
        return SIDES if self.is_paired else SIDES[:1]

    def field_name(self, which: str) -> str:
        """What the data calls a response: KTO's is its ``completion``."""
        return which if self.is_paired else "completion"

    def sample(self, which: str = "chosen") -> Sample:
        """The prompt with that response as its assistant turn: what SFT, validation and scoring take."""
        if which not in SIDES:
            raise ValueError(f"which={which!r}; use 'chosen' or 'rejected'")
        text = getattr(self, which)
        if text is None:
            raise ValueError(f"preference {self.id!r} is a KTO record: it has no rejected response, only its "
                             "completion (which='chosen')")
        meta = {**self.meta, **({"label": self.label} if self.label is not None else {})}
        meta.update({k: v for k, v in (("source", self.source), ("root", self.root)) if v})
        return Sample(self.id, [*self.messages, assistant_turn(text)], list(self.images), meta)


def read_preferences(path: str | Path, root: str | Path | None = None, fmt: str | None = None) -> list[Preference]:
    """Preferences from a data file or folder; relative image paths resolve under ``root``
    (default: the file's folder). A record the reader cannot read stops it, named by file and line."""
    root_dir, rows = load_rows(path, root, fmt)
    prefs = []
    for index, (where, row) in enumerate(rows):
        try:
            prefs.append(row_to_preference(row, index=index, root=root_dir, source=where))
        except (KeyError, TypeError, ValueError) as e:
            rid = row.get("id", row.get("idx", index))
            raise ValueError(f"{where}: cannot read preference record (id {rid!r}): {e}") from e
    return prefs


def row_to_preference(row: dict[str, Any], *, index: int, root: Path, source: str) -> Preference:
    """One record of any supported preference format as a Preference; the format is told by its fields."""
    images = _listed(row.get("images", row.get("image")))
    label = None
    if "conversations" in row:
        messages, images, chosen, rejected = _llava_pair(row, images)
    elif "question" in row:  # RLAIF-V
        messages, images = _prompt(_required(row, "question"), images)
        chosen, rejected = _response(row, "chosen"), _response(row, "rejected")
    elif "prompt" in row and "completion" in row:  # KTO
        messages, images = _prompt(row["prompt"], images)
        chosen, rejected, label = _response(row, "completion"), None, _required(row, "label")
        if not isinstance(label, bool):
            raise ValueError(f"label is {label!r}; use true (a desirable completion) or false")
    elif "prompt" in row:  # TRL
        messages, images = _prompt(row["prompt"], images)
        chosen, rejected = _response(row, "chosen"), _response(row, "rejected")
    else:
        raise ValueError("a preference record needs 'prompt' (TRL, or KTO with 'completion' and 'label'), "
                         "'conversations' (LLaVA-style) or 'question' (RLAIF-V)")
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"meta is {type(meta).__name__}; it must be an object of named values")
    meta = dict(meta)
    meta.update({k: v for k, v in row.items() if k not in _RECORD_FIELDS and not (k == "idx" and "id" not in row)})
    rid = row.get("id", row.get("idx"))
    return Preference(
        id=str(rid) if rid is not None else f"{Path(source.split(':')[0]).stem}-{index}",
        messages=messages, images=[_image_ref(ref, root) for ref in images],
        chosen=chosen, rejected=rejected, label=label, meta=meta, source=source, root=str(root),
    )


def _required(row: dict[str, Any], key: str) -> Any:
    if row.get(key) is None:
        raise ValueError(f"no {key!r} field (or it is null); give it, or drop the record")
    return row[key]


def _listed(images: Any) -> list[Any]:
    if images is None:
        return []
    return [images] if isinstance(images, (str, dict, Image.Image)) else list(images)


def _prompt(raw: Any, images: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """A plain prompt string gets its ``<image>`` placeholders as image parts, or one image part per
    image before the text; a conversational prompt keeps its parts."""
    if isinstance(raw, str):
        if IMAGE_PLACEHOLDER in raw:
            parts = _split_placeholders(raw)
        else:
            parts = [{"type": "image"} for _ in images] + ([{"type": "text", "text": raw}] if raw else [])
        return [{"role": "user", "content": parts}], images
    if isinstance(raw, list):
        return _chat_messages(raw, images)
    raise ValueError(f"prompt is {type(raw).__name__}; give a string or a list of chat messages")


def _response(row: dict[str, Any], name: str) -> str:
    """The response in field ``name`` as text: a plain string, or TRL's list holding one assistant message."""
    raw = _required(row, name)
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], dict) and raw[0].get("role") == "assistant":
        parts = content_parts(raw[0])
        if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
            return "".join(p.get("text") or "" for p in parts)
    raise ValueError(f"{name} is {json.dumps(raw, default=str)[:80]}; give a string or a list holding one "
                     'assistant message with text parts, e.g. [{"role": "assistant", "content": "..."}]')


def _llava_pair(row: dict[str, Any], images: list[Any]) -> tuple[list[dict[str, Any]], list[Any], str, str]:
    """``conversations`` is the prompt and ``chosen``/``rejected`` the responses; a final answer turn in
    it must repeat ``chosen``. With POVID's ``rejected_conversations``, each list ends with its response."""
    messages, images = _llava_conversation(row["conversations"], images)
    if "rejected_conversations" in row:
        other, _ = _llava_conversation(row["rejected_conversations"], None)
        ends = [m[-1]["role"] if m else None for m in (messages, other)]
        if messages[:-1] != other[:-1] or ends != ["assistant", "assistant"]:
            raise ValueError("'conversations' and 'rejected_conversations' must share the prompt turns and each "
                             "end with its answer")
        return messages[:-1], images, _text(messages[-1]), _text(other[-1])
    chosen, rejected = _response(row, "chosen"), _response(row, "rejected")
    if messages and messages[-1]["role"] == "assistant":
        if _text(messages[-1]) != chosen:
            raise ValueError("'conversations' ends with an answer that is not 'chosen'; it should hold only the "
                             "prompt turns")
        messages = messages[:-1]
    return messages, images, chosen, rejected


def _text(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in content_parts(message) if p.get("type") == "text")


@dataclass
class PreferenceReport(ValidationReport):
    """A ValidationReport whose ``valid_samples`` are the preferences that passed every check."""

    valid_samples: list[Preference] = field(default_factory=list)


def check_preferences(
    prefs: Sequence[Preference],
    *,
    processor: Any = None,
    root: str | Path | None = None,
    max_length: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreferenceReport:
    """Every problem of every record, each naming the field at fault (images, prompt, chosen, rejected,
    completion): the SFT checks on the prompt once, then each response: not empty, the two not the
    same, and, given ``processor``, encoded with its prompt by the training collator (``max_length``)."""
    check_max_pixels(max_pixels)
    found = [_record_issues(p, Limits(_root(p, root), max_pixels)) for p in prefs]
    if processor is not None:
        clean = [k for k, issues in enumerate(found) if not issues]
        for side in SIDES:
            ks = [k for k in clean if side in prefs[k].sides]
            encoded = _encoding_issues([prefs[k].sample(side) for k in ks], processor, max_length)
            for k, issues in zip(ks, encoded):
                found[k] += [(reason, f"{prefs[k].field_name(side)}: {detail}") for reason, detail in issues]
    report = PreferenceReport(total=len(prefs))
    for pref, issues in zip(prefs, found):
        report.issues += [Issue(pref.id, reason, detail, pref.source) for reason, detail in issues]
        if not issues:
            report.valid_samples.append(pref)
    return report


def _root(pref: Preference, root: str | Path | None) -> Path | None:
    if root is not None:
        return Path(root)
    return Path(pref.root) if pref.root else None


def _record_issues(pref: Preference, limits: Limits) -> list[tuple[str, str]]:
    prompt = Sample(pref.id, pref.messages, pref.images)
    issues = [(r, f"images: {d}") for r, d in check_images(prompt, limits)]
    issues += [(r, f"prompt: {d}") for check in (check_placeholders, check_text) for r, d in check(prompt, limits)]
    texts = {}
    for side in pref.sides:
        name, text = pref.field_name(side), getattr(pref, side)
        issues += [(r, f"{name}: {d}") for r, d in check_text(Sample(pref.id, [assistant_turn(text)]), limits)]
        if isinstance(text, str) and not text.strip():
            issues.append((EMPTY_ASSISTANT, f"{name} is empty; give the response, or drop the record"))
        texts[side] = text.strip() if isinstance(text, str) else text
    if pref.is_paired and texts["chosen"] and texts["chosen"] == texts["rejected"]:
        issues.append((IDENTICAL_RESPONSES, "chosen and rejected are the same text (whitespace aside); a pair "
                                            "must differ: fix the rejected response or drop the record"))
    return issues


def validate_preferences(
    prefs: Sequence[Preference],
    processor: Any,
    max_length: int | None = None,
    skip_invalid: bool = False,
    root: str | Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Preference]:
    """The preferences to train on, checked before step 0: all bad records named at once (raises
    DataValidationError), or with ``skip_invalid`` dropped, with how many and why logged."""
    report = check_preferences(prefs, processor=processor, root=root, max_length=max_length, max_pixels=max_pixels)
    if not report.ok:
        if not skip_invalid:
            report.raise_if_invalid()
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.counts().items()))
        logger.warning("skipping %d of %d preference records (%s):\n%s",
                       len(report.invalid_ids), report.total, counts, report.table())
    return report.valid_samples


def write_preferences(path: str | Path, prefs: Sequence[Preference], image_dir: str | Path | None = None) -> Path:
    """JSONL in TRL's vision preference format (KTO records as ``completion`` + ``label``), with ``id`` and
    ``meta``; written atomically. In-memory images are saved as PNG under ``image_dir`` (default
    ``<name>_images`` beside the file); image paths under the file's folder are written relative to it."""
    path = Path(path)
    image_dir = Path(image_dir) if image_dir is not None else path.parent / f"{path.stem}_images"
    lines = []
    for pref in prefs:
        row: dict[str, Any] = {"id": pref.id, "images": [_written_image(ref, path.parent, image_dir) for ref in pref.images],
                               "prompt": pref.messages}
        if pref.is_paired:
            row.update(chosen=[assistant_turn(pref.chosen)], rejected=[assistant_turn(pref.rejected)])
        else:
            row.update(completion=[assistant_turn(pref.chosen)], label=pref.label)
        row["meta"] = pref.meta
        try:
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        except (TypeError, ValueError) as e:
            raise ValueError(f"preference {pref.id!r} cannot be written as JSON ({e}); keep meta to strings, "
                             "numbers, booleans, lists and dicts") from e
    return atomic_write_text(path, "".join(lines))


def _written_image(ref: ImageRef, folder: Path, image_dir: Path) -> str:
    if isinstance(ref, Image.Image):
        buffer = io.BytesIO()
        ref.save(buffer, format="PNG")
        data = buffer.getvalue()
        # Named by content: records sharing an image share one file.
        ref = image_dir / f"{hashlib.sha256(data).hexdigest()[:20]}.png"
        if not ref.exists():
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, ref)
    absolute, base = Path(os.path.abspath(ref)), Path(os.path.abspath(folder))
    return absolute.relative_to(base).as_posix() if absolute.is_relative_to(base) else str(absolute)
