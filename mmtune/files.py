"""Atomic writes: a crash or kill never leaves a half-written result, cache or report file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any], *, fsync: bool = True) -> None:
    """Append one line and flush it to disk; a reader ignores a torn last line (see read_jsonl).

    ``fsync=False`` leaves the line in the OS's cache: it survives the process being killed, not the
    machine losing power (for a per-step log synced at checkpoints: see ``sync_file``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def sync_file(path: str | Path) -> None:
    """Force what was written to ``path`` onto the disk (nothing if it does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = True) -> list[dict[str, Any]]:
    """Read a JSONL file; a final line cut by a kill is dropped, any other bad line is an error."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if tolerate_torn_tail and i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({e}); fix or delete that line") from e
    return out


def mmtune_home() -> Path:
    """mmtune's cache root: ``$MMTUNE_HOME``, default ``~/.cache/mmtune`` (base models, eval caches)."""
    return Path(os.environ.get("MMTUNE_HOME") or Path.home() / ".cache" / "mmtune").expanduser()


def add_allow_pickle_argument(parser: Any) -> None:
    """``--allow-pickle``, worded once for every command that loads weights or a checkpoint."""
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="also load pickle files (.bin/.pt/.pth weights, adapters, a resumed run's optimizer and RNG "
             "state) beyond plain tensors; unpickling can run code, so only for files you trust",
    )
