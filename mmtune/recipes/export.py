"""Export a tuned checkpoint as a plain transformers checkpoint (LoRA-family updates merged in).

The result loads with ``AutoModelForImageTextToText.from_pretrained`` alone: no mmtune, no PEFT.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mmtune.model_card import CARD_FILE
from mmtune.recipes.sft import write_run_card
from mmtune.strategies.checkpoint import load_tuned, merge_for_export, read_mmtune_record, tuned_strategy


def export(tuned_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False, allow_pickle: bool = False) -> Path:
    """Merge the checkpoint in ``tuned_dir`` and write weights (safetensors), processor and model card
    (how it was tuned, and every score its card holds) to ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"export: {out} exists and is not empty; choose another --out, or pass --overwrite")
    loaded = load_tuned(tuned_dir, allow_pickle=allow_pickle)
    strategy = tuned_strategy(tuned_dir)
    model = merge_for_export(loaded.model, strategy)
    # Written next to the target, then renamed: a crash never leaves a half-exported checkpoint.
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    loaded.processor.save_pretrained(partial)
    if (Path(tuned_dir) / CARD_FILE).is_file():  # its scores carry over
        shutil.copyfile(Path(tuned_dir) / CARD_FILE, partial / CARD_FILE)
    write_run_card(partial, read_mmtune_record(tuned_dir) or {}, name=out.name, library_name="transformers",
                   extra=[("exported", f"{strategy} merged into plain weights" if strategy else "as it was")])
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out
