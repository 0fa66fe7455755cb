"""The answer cache: a greedy answer is computed once per (model, task, sample, settings).

Answers are appended to one JSONL file per (model fingerprint, task fingerprint) as each batch
finishes, so a killed evaluation loses at most the batch in flight and a rerun resumes. The file
may be cut by a kill, hold garbage, or be shared by several evaluations at once: unreadable lines
are skipped, reported and dropped, an answer never lands on a cut line, and every write happens
under a lock file so two processes neither interleave nor duplicate answers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from mmtune.files import atomic_write_text

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one evaluation per folder at a time there
    fcntl = None

logger = logging.getLogger(__name__)

# Elements read from each tensor for the weight hash: enough to see any tuned tensor change.
_ELEMENTS_PER_TENSOR = 1024
# Line numbers listed in a warning about unreadable lines; the rest are counted.
_LINES_LISTED = 20


def _without_paths(config: Any) -> Any:
    """A config dict minus ``_name_or_path``: the folder a model was loaded from is not its content."""
    if isinstance(config, dict):
        return {k: _without_paths(v) for k, v in config.items() if k != "_name_or_path"}
    return config


def model_fingerprint(model: nn.Module) -> str:
    """Hash of the model's config and a strided sample of every parameter and buffer.

    Reading ~1k evenly spaced values per tensor (not whole tensors) keeps this cheap for 7B
    models, while any tuning run (full, top-k layers, LoRA/adapter tensors, which add names)
    changes the hash. The load path is left out, so a checkpoint reached by a relative or an
    absolute path, or copied elsewhere, keeps its cached answers.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        h.update(json.dumps(_without_paths(config.to_dict()), sort_keys=True, default=str).encode())
    h.update(type(model).__name__.encode())
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            flat = t.detach().reshape(-1)
            stride = max(1, flat.numel() // _ELEMENTS_PER_TENSOR)
            picked = flat[::stride].double().cpu()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(picked.numpy().tobytes())
    return h.hexdigest()[:16]


def answer_key(model_fp: str, task_fp: str, sample_id: str, prompt: str, demonstrations: Sequence[str] = ()) -> str:
    """Cache key; the rendered prompt stands in for the sample's content and the chat template.

    A k-shot prompt adds its demonstrations' ids in order: two demonstrations can share a question
    and an answer but not their images, which the rendered prompt only shows as placeholders.
    Zero-shot keys are unchanged by this, so answers cached before stay valid.
    """
    parts: list = [model_fp, task_fp, sample_id, prompt]
    if demonstrations:
        parts.append(list(demonstrations))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, waiting: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if needed); say ``waiting`` if it is held."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        locked = fcntl is not None
        if locked:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    logger.warning("%s (lock %s)", waiting, lock_path)
                fcntl.flock(f, fcntl.LOCK_EX)
            except OSError as e:  # some network file systems refuse locks
                logger.warning("cannot lock %s (%s); processes sharing this folder could mix their files", lock_path, e)
                locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(f, fcntl.LOCK_UN)


def _parse_answer(line: bytes) -> dict[str, Any] | None:
    """One cache line as ``{"key": str, "raw": str, ...}``, or None when it is anything else."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("key"), str) and isinstance(record.get("raw"), str)):
        return None
    return record


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:_LINES_LISTED]))
    return shown + (f" and {len(numbers) - _LINES_LISTED} more" if len(numbers) > _LINES_LISTED else "")


class AnswerCache:
    """Generated answers of one model on one task, persisted under ``root`` as JSONL.

    Opening reads every line that holds a ``{"key", "raw"}`` object; other lines (cut by a kill,
    garbage, wrong types) are reported with their numbers and the file is rewritten without
    them. ``put`` first reads what other processes appended, so an answer is written once.
    """

    def __init__(self, root: str | Path, model_fp: str, task_fp: str) -> None:
        self.path = Path(root) / model_fp / f"{task_fp}.jsonl"
        self._lock = self.path.with_name(self.path.name + ".lock")
        self._records: dict[str, dict[str, Any]] = {}  # key -> the line's record, first one wins
        self._file_id: tuple[int, int] | None = None  # (device, inode) of the file read so far
        self._offset = 0  # bytes of it read: whole lines only
        self._lines = 0  # lines in those bytes
        if self.path.exists():
            with exclusive_lock(self._lock):
                bad, tail = self._read_new()
                if bad or tail:
                    self._drop_unreadable(bad, tail)

    def get(self, key: str) -> str | None:
        record = self._records.get(key)
        return None if record is None else record["raw"]

    def put(self, key: str, raw: str, **info: Any) -> None:
        with exclusive_lock(self._lock):
            bad, tail = self._read_new()
            if bad:
                self._warn(bad, "kept in place")
            if key in self._records:  # another process has just written it
                return
            record = {"key": key, "raw": raw, **info}
            line = json.dumps(record, default=str).encode() + b"\n"
            self._append((b"\n" if tail else b"") + line)  # never continue a cut line
            self._records[key] = record

    def __len__(self) -> int:
        return len(self._records)

    def _read_new(self) -> tuple[list[int], bytes]:
        """Read the lines appended since the last read (all of them if the file was replaced).

        Returns the numbers of unreadable lines and the bytes after the last newline (a cut line).
        """
        if not self.path.exists():
            self._file_id, self._offset, self._lines = None, 0, 0
            return [], b""
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) != self._file_id or st.st_size < self._offset:
                self._file_id, self._offset, self._lines = (st.st_dev, st.st_ino), 0, 0
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        bad = []
        for number, line in enumerate(data[:end].split(b"\n")[:-1], start=self._lines + 1):
            if not line.strip():
                continue
            record = _parse_answer(line)
            if record is None:
                bad.append(number)
            else:
                self._records.setdefault(record["key"], record)
        self._offset += end
        self._lines += data.count(b"\n", 0, end)
        return bad, data[end:]

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        self._file_id, self._offset = (st.st_dev, st.st_ino), st.st_size
        self._lines += data.count(b"\n")

    def _warn(self, bad: list[int], action: str) -> None:
        logger.warning("%s: skipped %d unreadable line%s (%s), %s; their answers will be generated again",
                       self.path, len(bad), "s" if len(bad) != 1 else "", _listed(bad), action)

    def _drop_unreadable(self, bad: list[int], tail: bytes) -> None:
        """Rewrite the file with only its readable answers, once each (called under the lock)."""
        if tail.strip():
            bad = [*bad, self._lines + 1]
        if bad:
            self._warn(bad, "removed from the file")
        text = "".join(json.dumps(record, default=str) + "\n" for record in self._records.values())
        atomic_write_text(self.path, text)
        self._file_id, self._offset, self._lines = None, 0, 0
        self._read_new()
