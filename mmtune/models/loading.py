"""Loading a local image-text-to-text checkpoint with its processor and resolved groups.

Safe by default: safetensors only unless the caller trusts pickles, no remote code unless asked,
and never a hub download (the path must be a local directory).
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.trainer_pt_utils import safe_globals as numpy_rng_globals
from transformers.utils import is_torchvision_available

import mmtune.models.resampler  # noqa: F401  (registers the resampler LLaVA with the Auto classes)
from mmtune.models.family import ModelGroups
from mmtune.models.generic import resolve_groups
from mmtune.models.quantization import QuantizationConfig, load_device_map
from mmtune.models.qwen2_vl import (
    Qwen2_5_VLImageOnlyProcessor,
    Qwen2VLImageOnlyProcessor,
)

# Processor classes mmtune defines, by the name save_pretrained writes into processor_config.json.
_MMTUNE_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    cls.__name__: cls for cls in (Qwen2VLImageOnlyProcessor, Qwen2_5_VLImageOnlyProcessor)
}
# Stock processors that cannot be built without torchvision (they require a video processor),
# and the image-only variant used in their place when it is missing.
_WITHOUT_TORCHVISION: dict[str, type[ProcessorMixin]] = {
    "Qwen2VLProcessor": Qwen2VLImageOnlyProcessor,
    "Qwen2_5_VLProcessor": Qwen2_5_VLImageOnlyProcessor,
}
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready for mmtune: the transformers model, its processor and its groups."""

    model: PreTrainedModel
    processor: ProcessorMixin
    groups: ModelGroups


def load_model(
    path: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    quantization: QuantizationConfig | None = None,
) -> LoadedModel:
    """Load the checkpoint in local directory ``path`` with AutoModelForImageTextToText; ``quantization``
    stores its linear layers in 4 or 8 bits as they load (QLoRA's base)."""
    directory = Path(path).expanduser()
    _check_checkpoint(directory, allow_pickle)
    pickles = [] if _has_safetensors(directory) else pickle_files(directory)
    quantized = ({"quantization_config": quantization.bitsandbytes_config(), "device_map": load_device_map()}
                 if quantization else {})
    with trusted_pickles(pickles, allow_pickle):
        model = AutoModelForImageTextToText.from_pretrained(
            directory,
            dtype=_dtype(dtype),
            use_safetensors=not pickles,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            **quantized,
        )
    processor = load_processor(directory, trust_remote_code=trust_remote_code)
    return LoadedModel(model=model.eval(), processor=processor, groups=resolve_groups(model))


def load_processor(path: str | Path, *, trust_remote_code: bool = False) -> ProcessorMixin:
    """The processor saved in ``path`` (mmtune's image-only variants included)."""
    directory = Path(path)
    name = _processor_class_name(directory)
    cls: Any = _MMTUNE_PROCESSORS.get(name)
    if cls is None and not is_torchvision_available():
        cls = _WITHOUT_TORCHVISION.get(name)
    if cls is not None:
        return cls.from_pretrained(directory, local_files_only=True)
    return AutoProcessor.from_pretrained(directory, trust_remote_code=trust_remote_code, local_files_only=True)


def _check_checkpoint(directory: Path, allow_pickle: bool) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"model directory {str(directory)!r} does not exist; pass a local checkpoint directory "
            "(mmtune never downloads from a hub), e.g. one written by `save_tiny` or save_pretrained"
        )
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(directory)!r} has no config.json, so it is not a transformers checkpoint; "
            "point at the directory that holds config.json and the weights"
        )
    if _has_safetensors(directory):
        return
    if pickle_files(directory):
        if not allow_pickle:
            raise UntrustedPickleError(
                f"{str(directory)!r} holds only pickle weights (.bin/.pt), which can run code when loaded; "
                "pass --allow-pickle (allow_pickle=True) if you trust it, or convert it to safetensors"
            )
        return
    raise FileNotFoundError(f"{str(directory)!r} has config.json but no weights (*.safetensors)")


class UntrustedPickleError(ValueError):
    """A pickle file mmtune would have to unpickle beyond plain tensors; ``--allow-pickle`` lifts it."""


PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


def pickle_files(directory: Path) -> list[Path]:
    """The pickle files (``.bin``, ``.pt``, ``.pth``) directly in ``directory``, sorted."""
    return sorted(f for f in directory.glob("*") if f.suffix in PICKLE_SUFFIXES and f.is_file())


@contextmanager
def trusted_pickles(files: Iterable[str | Path], allow_pickle: bool) -> Iterator[None]:
    """Vet pickle ``files`` before ``torch.load(weights_only=True)`` reads them inside the block.

    torch's weights-only loader refuses any global beyond tensors and containers with a multi-line
    ``UnpicklingError`` that does not name the file. Its globals are listed here first (without
    unpickling), beside the numpy types the Trainer's RNG state needs: a file naming others is an
    ``UntrustedPickleError`` naming the file, or, with ``allow_pickle``, those globals are allowed.
    """
    allowed: list[Any] = []
    for file in map(Path, files):
        names = _unsafe_globals(file)
        if names and not allow_pickle:
            raise UntrustedPickleError(
                f"{file}: a pickle naming {', '.join(names[:5])} beyond plain tensors, which can run code when "
                "loaded; pass --allow-pickle if you trust this file, otherwise delete or replace it"
            )
        allowed += [_import_global(name, file) for name in names]
    with numpy_rng_globals(), torch.serialization.safe_globals(allowed):
        yield


def _unsafe_globals(file: Path) -> list[str]:
    with numpy_rng_globals():
        try:
            return torch.serialization.get_unsafe_globals_in_checkpoint(str(file))
        except (ValueError, RuntimeError):
            return []  # not a torch.save archive (legacy format): torch's own loader decides


def _import_global(name: str, file: Path) -> Any:
    """``"pkg.mod.Class"`` -> the object, trying the longest importable module prefix first."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise UntrustedPickleError(f"{file}: names {name}, which cannot be imported here; it cannot be loaded")


def _has_safetensors(directory: Path) -> bool:
    return any(directory.glob("*.safetensors"))


def _processor_class_name(directory: Path) -> str | None:
    for name in ("processor_config.json", "preprocessor_config.json"):
        file = directory / name
        if file.is_file():
            return json.loads(file.read_text()).get("processor_class")
    return None


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    if dtype is None:
        return "auto"  # keep the checkpoint's own dtype
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]
