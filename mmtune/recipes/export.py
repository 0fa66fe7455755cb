"""Export a tuned checkpoint as a plain transformers checkpoint (LoRA-family updates merged in).

The result loads with ``AutoModelForImageTextToText.from_pretrained`` alone: no mmtune, no PEFT.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mmtune.strategies.checkpoint import load_tuned, merge_for_export, tuned_strategy


def export(tuned_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False, allow_pickle: bool = False) -> Path:
    """Merge the checkpoint in ``tuned_dir`` and write weights (safetensors) + processor to ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"export: {out} exists and is not empty; choose another --out, or pass --overwrite")
    loaded = load_tuned(tuned_dir, allow_pickle=allow_pickle)
    model = merge_for_export(loaded.model, tuned_strategy(tuned_dir))
    # Written next to the target, then renamed: a crash never leaves a half-exported checkpoint.
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    loaded.processor.save_pretrained(partial)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out
