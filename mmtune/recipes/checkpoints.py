"""Checkpoints that a kill or a full disk cannot half-write, and the choice of the one to resume from.

A checkpoint directory is written under ``output_dir/.partial/`` and renamed into place only once
every file in it is complete and on disk, so ``checkpoint-N`` either exists whole or not at all.
``last_complete_checkpoint`` still checks each candidate, because directories written by older
versions or other tools may be cut short; it names the ones it skips instead of failing on them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

STAGING_DIR = ".partial"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")  # the transformers Trainer's layout
TRAINER_STATE = "trainer_state.json"
TORCH_ZIP_SUFFIXES = (".pt", ".pth", ".bin")  # torch.save's zip archives (optimizer, scheduler, RNG)


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and the directories holding them, so a rename publishes data."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_dir(staged: Path, target: Path) -> Path:
    """Move the complete directory ``staged`` to ``target`` by rename, replacing an older ``target``.

    An older ``target`` (e.g. a half-written checkpoint left by an earlier version) is first renamed
    aside, so at every instant ``target`` is either the old directory, absent, or the new one.
    """
    fsync_tree(staged)
    if target.exists():
        aside = staged.parent / f"{target.name}.replaced"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, target)
    _fsync_dir(target.parent)
    return target


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole: its header must parse and its size match the header's offsets."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name} is cut short ({size} bytes)"
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            return f"{path.name} is cut short inside its header"
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"{path.name} has an unreadable header"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        return f"{path.name} holds {size} bytes, its header promises {expected}"
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """``None`` when ``path`` is a complete Trainer checkpoint, else what is missing or cut short.

    Complete: ``trainer_state.json`` (written last by the Trainer) parses and names this step,
    there are model weights, every safetensors file matches its header and every torch file
    is a whole zip archive.
    """
    path = Path(path)
    match = CHECKPOINT_NAME.match(path.name)
    state_file = path / TRAINER_STATE
    if not state_file.is_file():
        return f"{TRAINER_STATE} is missing"
    try:
        step = json.loads(state_file.read_text(encoding="utf-8")).get("global_step")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return f"{TRAINER_STATE} is not valid JSON"
    if match and step != int(match.group(1)):
        return f"{TRAINER_STATE} records step {step}, not {match.group(1)}"
    files = [p for p in path.iterdir() if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors" or p.name.endswith("model.bin")]
    if not weights and not any(p.is_dir() for p in path.iterdir()):  # sharded/DeepSpeed layouts use folders
        return "no model weights"
    for p in files:
        if p.suffix == ".safetensors":
            problem = _safetensors_problem(p)
            if problem:
                return problem
        elif p.suffix in TORCH_ZIP_SUFFIXES and not zipfile.is_zipfile(p):
            return f"{p.name} is not a whole torch archive"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The complete ``checkpoint-N`` with the highest N in ``output_dir``, and the newer ones skipped (with why)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None, []
    candidates = sorted(
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_NAME.match(p.name))
    )
    skipped = []
    for _, path in reversed(candidates):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped
