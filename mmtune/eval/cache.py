"""The answer cache: a greedy answer is computed once per (model, task, sample, settings).

Answers are appended to one JSONL file per (model fingerprint, task fingerprint) as each batch
finishes, so a killed evaluation loses at most the batch in flight and a rerun resumes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmtune.files import append_jsonl, read_jsonl

# Elements read from each tensor for the weight hash: enough to see any tuned tensor change.
_ELEMENTS_PER_TENSOR = 1024


def model_fingerprint(model: nn.Module) -> str:
    """Hash of the model's config and a strided sample of every parameter and buffer.

    Reading ~1k evenly spaced values per tensor (not whole tensors) keeps this cheap for 7B
    models, while any tuning run (full, top-k layers, LoRA/adapter tensors, which add names)
    changes the hash.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    h.update(type(model).__name__.encode())
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            flat = t.detach().reshape(-1)
            stride = max(1, flat.numel() // _ELEMENTS_PER_TENSOR)
            picked = flat[::stride].double().cpu()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(picked.numpy().tobytes())
    return h.hexdigest()[:16]


def answer_key(model_fp: str, task_fp: str, sample_id: str, prompt: str) -> str:
    """Cache key; the rendered prompt stands in for the sample's content and the chat template."""
    blob = json.dumps([model_fp, task_fp, sample_id, prompt])
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """Generated answers of one model on one task, persisted under ``root`` as JSONL."""

    def __init__(self, root: str | Path, model_fp: str, task_fp: str) -> None:
        self.path = Path(root) / model_fp / f"{task_fp}.jsonl"
        self._answers: dict[str, str] = {r["key"]: r["raw"] for r in read_jsonl(self.path)}

    def get(self, key: str) -> str | None:
        return self._answers.get(key)

    def put(self, key: str, raw: str, **info: Any) -> None:
        append_jsonl(self.path, {"key": key, "raw": raw, **info})
        self._answers[key] = raw

    def __len__(self) -> int:
        return len(self._answers)
