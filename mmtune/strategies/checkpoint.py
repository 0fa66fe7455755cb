"""Saving, loading and exporting tuned models.

Two layouts, both safetensors only, both with an ``mmtune.json`` (strategy spec, base model,
meta):

- ``full``: selective strategies change existing weights only, so the whole model is written
  with ``save_pretrained``; the directory is a plain transformers checkpoint.
- ``delta``: PEFT and hand-written additive strategies store only what they train: the PEFT
  adapter (``adapter_model.safetensors`` + ``adapter_config.json``) and every other trainable
  tensor (hand-written adapters, selectively unfrozen weights) in ``mmtune_weights.safetensors``.
  Loading re-applies the spec to the base model and loads those tensors into it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn

from mmtune.files import atomic_write_json
from mmtune.models.generic import unwrap
from mmtune.models.loading import LoadedModel, UntrustedPickleError, load_model, load_processor, trusted_pickles
from mmtune.models.quantization import quantization_of
from mmtune.strategies.apply import apply_strategy
from mmtune.strategies.registry import ResolvedStrategy, resolve
from mmtune.strategies.targets import plain_named_parameters

MMTUNE_FILE = "mmtune.json"
EXTRA_WEIGHTS = "mmtune_weights.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"  # what PEFT writes with safe_serialization=False


class MissingWeightsError(FileNotFoundError):
    """A tuned checkpoint lacks tensors its strategy trains; loading it would give the untuned base."""


def save_tuned(
    model: nn.Module, processor: Any, out_dir: str | Path, spec: str | ResolvedStrategy, meta: dict[str, Any]
) -> Path:
    """Write a tuned model (layout chosen by the strategy, see module doc); returns ``out_dir``.

    ``meta["base_model"]`` overrides the base checkpoint path recorded for delta layouts
    (default: the path the base model was loaded from).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategy = resolve(spec)
    canonical = strategy.spec
    base = unwrap(model)
    base_path = _local_path(meta.get("base_model") or getattr(base, "name_or_path", ""))
    full = strategy.saves == "full"
    if full:
        base.save_pretrained(out, safe_serialization=True)
    else:
        if not base_path:
            raise ValueError(
                f"save_tuned({out}): strategy {canonical!r} is saved as a delta on its base model, but the "
                "base model's path is unknown; pass meta={'base_model': '<checkpoint dir>'}"
            )
        _save_delta(model, out)
    if processor is not None:
        processor.save_pretrained(out)
    record = {
        "strategy": canonical,
        "format": "full" if full else "delta",
        "base_model": base_path or None,
        # how the base was stored while tuning (QLoRA); the delta is loaded and merged on the full-precision base
        "base_quantization": quantization_of(model),
        "meta": meta,
    }
    atomic_write_json(out / MMTUNE_FILE, record)
    return out


def _save_delta(model: nn.Module, out: Path) -> None:
    if isinstance(model, PeftModel):
        model.save_pretrained(out, safe_serialization=True)
    extra = {name: p.detach().contiguous() for name, p in _extra_parameters(model).items()}
    if extra:
        save_file(extra, str(out / EXTRA_WEIGHTS))


def _extra_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable tensors a delta checkpoint keeps in ``EXTRA_WEIGHTS`` (not in the PEFT adapter)."""
    owned = _peft_owned(model)
    return {name: p for name, p in plain_named_parameters(model) if p.requires_grad and not owned(name)}


def _peft_owned(model: nn.Module) -> Callable[[str], bool]:
    """Whether a parameter is in the PEFT adapter file (so not saved a second time)."""
    if not isinstance(model, PeftModel):
        return lambda name: False
    # PEFT names its tensors with the tuner's prefix (lora_, ia3_, hada_, vera_lambda_) or keeps
    # them in the prompt encoder.
    prefix = getattr(model.base_model, "prefix", None)
    return lambda name: name.startswith("prompt_encoder.") or bool(prefix and prefix in name)


def _local_path(path: str) -> str:
    # A relative local path is made absolute so the checkpoint loads from any working directory.
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def read_mmtune_record(path: str | Path) -> dict[str, Any] | None:
    """The ``mmtune.json`` of a checkpoint dir, or None for a plain transformers checkpoint."""
    f = Path(path) / MMTUNE_FILE
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e}); restore it or re-save the checkpoint") from e


def load_tuned(path: str | Path, **load_kwargs: Any) -> LoadedModel:
    """Load what ``save_tuned`` wrote, or any plain transformers checkpoint; kwargs go to ``load_model``.

    A delta checkpoint must hold every tensor its strategy trains: a missing adapter or extra-weights
    file is an error naming it, never a silent fall-back to the untuned base model.
    """
    path = Path(path)
    record = read_mmtune_record(path)
    if record is None or record.get("format") == "full":
        return load_model(str(path), **load_kwargs)
    if record.get("format") != "delta" or not record.get("strategy"):
        raise ValueError(
            f"{path / MMTUNE_FILE}: needs 'strategy' and 'format' (full or delta); restore it or re-save the checkpoint"
        )
    if not record.get("base_model"):
        raise ValueError(
            f"{path / MMTUNE_FILE}: delta checkpoint without 'base_model'; set it to the base checkpoint dir"
        )
    spec = record["strategy"]
    base = load_model(record["base_model"], **load_kwargs)
    model, _ = apply_strategy(base.model, resolve(spec), base.groups)
    if isinstance(model, PeftModel):
        _load_adapter(model, path, spec, allow_pickle=load_kwargs.get("allow_pickle", False))
    expected = _extra_parameters(model)
    if expected or (path / EXTRA_WEIGHTS).exists():
        _load_extra(expected, path / EXTRA_WEIGHTS, spec)
    processor = base.processor
    if (path / "processor_config.json").exists() or (path / "tokenizer_config.json").exists():
        processor = load_processor(path, trust_remote_code=load_kwargs.get("trust_remote_code", False))
    return LoadedModel(model=model, processor=processor, groups=base.groups)


def _load_adapter(model: PeftModel, path: Path, spec: str, allow_pickle: bool) -> None:
    """Load the PEFT adapter file into ``model``; every adapter tensor must be in it."""
    file = path / ADAPTER_WEIGHTS
    pickled = path / ADAPTER_PICKLE
    if file.exists():
        tensors = load_file(str(file))
    elif pickled.exists():
        if not allow_pickle:
            raise UntrustedPickleError(
                f"{pickled}: the adapter of strategy {spec!r} is only here as a pickle, which can run code when "
                f"loaded; pass --allow-pickle if you trust it, or convert it to {ADAPTER_WEIGHTS}"
            )
        file = pickled
        with trusted_pickles([pickled], allow_pickle):
            tensors = torch.load(pickled, map_location="cpu", weights_only=True)
    else:
        raise MissingWeightsError(
            f"{file} is missing: strategy {spec!r} keeps its trained weights there, so without it the model "
            "would be the untuned base; restore the file or point at a complete checkpoint"
        )
    owned = _peft_owned(model)
    wanted = {name for name, _ in model.named_parameters() if owned(name)}
    result = set_peft_model_state_dict(model, tensors)
    # PEFT loads soft prompts into the prompt encoder itself, yet still lists them as unexpected
    # (and the encoder's weight as missing).
    unexpected = [k for k in result.unexpected_keys if k != "prompt_embeddings"]
    if unexpected:
        raise ValueError(f"{file}: tensors {unexpected[:5]} do not fit strategy {spec!r}")
    if model.peft_config[model.active_adapter].is_prompt_learning:
        missing = [] if "prompt_embeddings" in tensors else ["prompt_embeddings"]
    else:
        missing = sorted(wanted & set(result.missing_keys))
    if missing:
        raise MissingWeightsError(
            f"{file}: lacks {len(missing)} tensor(s) strategy {spec!r} trains (e.g. {missing[0]}); "
            "the file is incomplete: restore it or re-save the checkpoint"
        )


def _load_extra(expected: dict[str, nn.Parameter], file: Path, spec: str) -> None:
    if not file.exists():
        raise MissingWeightsError(
            f"{file} is missing: strategy {spec!r} trains {len(expected)} tensor(s) kept there "
            f"(e.g. {next(iter(expected))}); restore the file or point at a complete checkpoint"
        )
    tensors = load_file(str(file))
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise ValueError(
            f"{file}: tensors {unknown[:5]} have no place in the base model under strategy {spec!r}"
        )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise MissingWeightsError(
            f"{file}: lacks {len(missing)} tensor(s) strategy {spec!r} trains (e.g. {missing[0]}); "
            "the file is incomplete: restore it or re-save the checkpoint"
        )
    for name, t in tensors.items():
        if expected[name].shape != t.shape:
            raise ValueError(
                f"{file}: {name} has shape {tuple(t.shape)}, the model expects {tuple(expected[name].shape)}"
            )
        expected[name].data.copy_(t)


def merge_for_export(model: nn.Module, strategy: str | ResolvedStrategy | None = None) -> nn.Module:
    """Fold the updates of ``strategy`` (LoRA family, IA3, selective) into plain weights; returns a
    plain transformers model. ``strategy=None`` is a plain checkpoint, returned as it is.

    Strategies registered as not mergeable (adapters, soft prompts: they add computation no plain
    weight can express) are refused with an error instead of being silently dropped.
    """
    if strategy is None:
        return model
    strategy = resolve(strategy)
    if not strategy.mergeable:
        raise ValueError(
            f"merge_for_export: {', '.join(strategy.unmergeable())} of strategy {strategy.spec!r} adds computation "
            "a plain transformers checkpoint cannot express; keep the mmtune checkpoint (save_tuned / load_tuned)"
        )
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def tuned_strategy(path: str | Path) -> str | None:
    """The strategy a checkpoint dir was tuned with (None for a plain transformers checkpoint)."""
    record = read_mmtune_record(path)
    return record.get("strategy") if record else None
