"""Readers: LLaVA JSON, messages JSONL, HF datasets (``save_to_disk`` dirs, parquet) -> Samples.

A reader only loads rows; one converter turns any row (LLaVA ``conversations`` or HF-chat
``messages``) into a Sample, so every format gets the same placeholder and image handling.
Relative image paths are joined to the data root but not resolved: validation checks, on real
paths, that none escapes the root (symlinks included) and reports the record that tries.
Chain-of-thought records give their reasoning either as a ``rationale`` string beside the
conversation (kept in ``meta["rationale"]``) or inside the answer, "<rationale> So the answer is X.";
``mmtune.recipes.cot`` turns either into one-stage or two-stage training data.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image

from mmtune.data.sample import ROLES, Sample, content_parts
from mmtune.registry import Registry

IMAGE_PLACEHOLDER = "<image>"
_LLAVA_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}

RowLoader = Callable[[Path], Iterable[tuple[str, dict[str, Any]]]]  # yields (where, row)


@dataclass(frozen=True)
class Reader:
    """How to load the rows of one on-disk format, and the suffixes that select it."""

    name: str
    load_rows: RowLoader
    suffixes: tuple[str, ...] = ()
    is_dir: bool = False


READERS: Registry[Reader] = Registry("data format")


def register_reader(reader: Reader) -> Reader:
    return READERS.register(reader.name, reader)


def list_formats() -> list[str]:
    return sorted(READERS)


def _detect_format(path: Path) -> str:
    for reader in READERS.values():
        if (path.is_dir() and reader.is_dir) or (path.is_file() and path.suffix.lower() in reader.suffixes):
            return reader.name
    raise ValueError(
        f"cannot tell the data format of {path} from its suffix; pass fmt= (--format) as one of "
        f"{', '.join(list_formats())}"
    )


def load_rows(
    path: str | Path, root: str | Path | None = None, fmt: str | None = None
) -> tuple[Path, Iterable[tuple[str, dict[str, Any]]]]:
    """The data root and the ``(where, row)`` pairs of a data file or folder in any registered format.

    ``root`` defaults to the file's folder (the folder itself for an HF dataset dir).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    fmt = fmt or _detect_format(path)
    if fmt not in READERS:
        raise ValueError(f"unknown data format {fmt!r} for {path}; known: {', '.join(list_formats())}")
    root_dir = Path(root) if root is not None else (path if path.is_dir() else path.parent)
    return root_dir, READERS[fmt].load_rows(path)


def read_records(path: str | Path, root: str | Path | None = None, fmt: str | None = None) -> list[Sample]:
    """Samples from a data file or folder; relative image paths resolve under ``root`` (see ``load_rows``)."""
    root_dir, rows = load_rows(path, root, fmt)
    samples = []
    for index, (where, row) in enumerate(rows):
        try:
            samples.append(row_to_sample(row, index=index, root=root_dir, source=where))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: cannot read record (id {row.get('id', index)!r}): {e}") from e
    return samples


def row_to_sample(row: dict[str, Any], *, index: int, root: Path, source: str) -> Sample:
    """One LLaVA-style (``conversations``) or chat-style (``messages``) row as a Sample."""
    if "conversations" in row:
        messages, images = _llava_conversation(row["conversations"], row.get("image", row.get("images")))
        own = ("id", "conversations", "image", "images")
    elif "messages" in row:
        messages, images = _chat_messages(row["messages"], row.get("images"))
        own = ("id", "messages", "images")
    else:
        raise ValueError("a record needs 'conversations' (LLaVA) or 'messages' (chat format)")
    meta = {k: v for k, v in row.items() if k not in own}
    if meta.get("rationale") is not None and not isinstance(meta["rationale"], str):
        raise ValueError(f"field 'rationale' is {type(meta['rationale']).__name__}; write it as one string, the "
                         "reasoning before the answer (or put it in the answer: '<rationale> So the answer is X.')")
    meta.update(source=source, root=str(root))
    sample_id = row.get("id")
    return Sample(
        id=str(sample_id) if sample_id is not None else f"{Path(source).stem}-{index}",
        messages=messages,
        images=[_image_ref(ref, root) for ref in images],
        meta=meta,
    )


def _llava_conversation(turns: list[dict[str, Any]], image: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    messages = []
    for j, turn in enumerate(turns):
        speaker = turn.get("from")
        if speaker not in _LLAVA_ROLES:
            raise ValueError(f"turn {j} has 'from': {speaker!r}; expected one of {', '.join(_LLAVA_ROLES)}")
        messages.append({"role": _LLAVA_ROLES[speaker], "content": _split_placeholders(str(turn.get("value", "")))})
    images = [] if image is None else [image] if isinstance(image, (str, dict, Image.Image)) else list(image)
    return messages, images


def _split_placeholders(value: str) -> list[dict[str, Any]]:
    """``"<image>\\nWhat is it?"`` -> image part + text part, parts in placeholder order."""
    pieces = value.split(IMAGE_PLACEHOLDER)
    parts: list[dict[str, Any]] = []
    for j, piece in enumerate(pieces):
        # Newlines around a placeholder are LLaVA layout; the chat template adds its own.
        piece = piece.lstrip() if j > 0 else piece
        piece = piece.rstrip() if j < len(pieces) - 1 else piece
        if piece:
            parts.append({"type": "text", "text": piece})
        if j < len(pieces) - 1:
            parts.append({"type": "image"})
    return parts


def _chat_messages(raw: list[dict[str, Any]], images: list[Any] | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """Inline ``{"type": "image", "image": ref}`` parts move to the image list, in order."""
    pending = list(images or [])
    refs: list[Any] = []
    messages = []
    for j, message in enumerate(raw):
        if message.get("role") not in ROLES:
            raise ValueError(f"message {j} has role {message.get('role')!r}; expected one of {', '.join(ROLES)}")
        parts = []
        for k, part in enumerate(content_parts(message)):
            if not isinstance(part, dict):
                raise ValueError(f"message {j} part {k} is {part!r}; a part is an object like "
                                 '{"type": "text", "text": "..."} or {"type": "image"}')
            # HF datasets fill absent struct fields with None; drop them so parts stay clean.
            part = {k: v for k, v in part.items() if v is not None}
            if part.get("type") == "image":
                inline = part.pop("image", None) or part.pop("path", None)
                if inline is not None:
                    refs.append(inline)
                elif pending:
                    refs.append(pending.pop(0))
            parts.append(part)
        messages.append({"role": message["role"], "content": parts})
    # Images no part asks for stay attached so validation reports the count mismatch.
    return messages, refs + pending


def _image_ref(ref: Any, root: Path) -> str | Image.Image:
    if isinstance(ref, Image.Image):
        return ref
    if isinstance(ref, dict):  # an HF Image feature not decoded: {"bytes", "path"}
        if ref.get("bytes"):
            return Image.open(io.BytesIO(ref["bytes"]))
        ref = ref.get("path")
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"image reference {ref!r} is neither a path nor an image")
    path = Path(ref)
    return str(path if path.is_absolute() else root / path)


def _utf8(raw: bytes, path: Path, line: int | None = None) -> str:
    """``raw`` decoded as UTF-8 (what JSON requires), or an error naming the file, line and byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line if line is not None else raw.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}:{line}: byte {raw[e.start:e.start + 1]!r} is not UTF-8 ({e.reason}); JSON data must be "
            "UTF-8: re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from e


def _json_list_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(_utf8(path.read_bytes(), path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: a LLaVA JSON file must hold a list of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: record {i} is not a JSON object")
        yield f"{path}: record {i}", row


def _jsonl_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = _utf8(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e}); fix or delete that line") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: a record must be a JSON object")
            yield f"{path}:{lineno}", row


def _hf_disk_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        raise ValueError(f"{path} holds splits {', '.join(data)}; pass the folder of one split, e.g. {path}/{next(iter(data))}")
    # Image columns come undecoded ({"bytes", "path"}): decoding here would stop at the first bad
    # image without naming its record; validation decodes each one and names it instead.
    for i, row in enumerate(data.to_iterable_dataset().decode(False)):
        yield f"{path}: row {i}", row


def _parquet_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    # pyarrow (a datasets dependency) reads the file directly: no datasets cache is written.
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"{path}: row {i}", row


register_reader(Reader("llava_json", _json_list_rows, suffixes=(".json",)))
register_reader(Reader("messages_jsonl", _jsonl_rows, suffixes=(".jsonl",)))
register_reader(Reader("hf_disk", _hf_disk_rows, is_dir=True))
register_reader(Reader("parquet", _parquet_rows, suffixes=(".parquet",)))
