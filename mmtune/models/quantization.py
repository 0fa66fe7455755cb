"""A quantized base model (QLoRA): the base's linear layers stored in 4 or 8 bits by bitsandbytes.

The base is quantized as it loads (transformers' ``BitsAndBytesConfig``), prepared for training
with PEFT's ``prepare_model_for_kbit_training``, and tuned through strategies that leave its own
weights frozen (LoRA and the other reparameterizations, adapters, prompts): quantized weights
take no gradient. The tuned delta is saved on the full-precision base, so exporting merges it
into a full-precision checkpoint.
"""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

BITS = (4, 8)
TYPES_4BIT = ("nf4", "fp4")
COMPUTE_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIN_BITSANDBYTES = (0, 50)  # the first release with CPU kernels for NF4 and int8 layers


@dataclass
class QuantizationConfig:
    """How the base model's linear layers are stored while it is tuned (``model_quantization:``)."""

    bits: int = field(default=4, metadata={"help": "4 (QLoRA: NF4 or FP4 blocks) or 8 (LLM.int8)"})
    type: str = field(default="nf4", metadata={"help": f"4-bit data type, one of {', '.join(TYPES_4BIT)}"})
    double_quant: bool = field(default=True, metadata={
        "help": "4-bit only: quantize the blocks' scales too (QLoRA's double quantization, ~0.4 bit a weight less)"})
    compute_dtype: str = field(default="auto", metadata={
        "help": f"dtype the 4-bit layers compute in, one of {', '.join(COMPUTE_DTYPES)}; auto = bfloat16 on a "
                "GPU that supports it, else float32"})

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise ValueError(f"model_quantization.bits must be 4 or 8, got {self.bits!r}")
        if self.type not in TYPES_4BIT:
            raise ValueError(f"model_quantization.type must be one of {', '.join(TYPES_4BIT)}, got {self.type!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"model_quantization.compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, "
                             f"got {self.compute_dtype!r}")

    def torch_compute_dtype(self) -> torch.dtype:
        chosen = COMPUTE_DTYPES[self.compute_dtype]
        if chosen is not None:
            return chosen
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32

    def bitsandbytes_config(self) -> Any:
        """transformers' ``BitsAndBytesConfig`` for these settings (bitsandbytes must be installed)."""
        require_bitsandbytes()
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.type,
                                  bnb_4bit_use_double_quant=self.double_quant,
                                  bnb_4bit_compute_dtype=self.torch_compute_dtype())

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records of how its base was stored while tuning."""
        return asdict(self) if self.bits == 4 else {"bits": 8}


class MissingBitsandbytesError(ImportError):
    """``model_quantization`` was asked for without a usable bitsandbytes."""


def bitsandbytes_version() -> tuple[int, ...] | None:
    """The installed bitsandbytes release as numbers, or None when it is absent."""
    try:
        text = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def require_bitsandbytes() -> None:
    found = bitsandbytes_version()
    if found is None or found < MIN_BITSANDBYTES:
        have = "is not installed" if found is None else f"is {'.'.join(map(str, found))}"
        raise MissingBitsandbytesError(
            f"model_quantization needs bitsandbytes >= {'.'.join(map(str, MIN_BITSANDBYTES))} (it {have}): "
            "pip install 'mmtune[qlora]', or remove model_quantization from the config")


def load_device_map() -> dict[str, Any]:
    """Where a quantized model is placed as it loads: bitsandbytes quantizes on the device the weights
    land on, so each process puts the whole model on its own GPU (LOCAL_RANK), or on the CPU."""
    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": "cpu"}


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` (or the model a PEFT wrapper holds) was loaded with bitsandbytes layers."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(inner, "is_quantized", False))


def quantization_of(model: nn.Module) -> dict[str, Any] | None:
    """The settings a quantized ``model`` was loaded with, in ``QuantizationConfig.describe``'s form."""
    if not is_quantized(model):
        return None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = inner.config.quantization_config
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if config.get("load_in_8bit"):
        return {"bits": 8}
    if not config.get("load_in_4bit"):
        return {"method": config.get("quant_method")}  # quantized by another library than bitsandbytes
    return {"bits": 4, "type": config.get("bnb_4bit_quant_type"), "double_quant": config.get("bnb_4bit_use_double_quant"),
            "compute_dtype": str(config.get("bnb_4bit_compute_dtype")).removeprefix("torch.")}


def prepare_for_kbit_training(model: nn.Module, selective_parts: list[str]) -> nn.Module:
    """PEFT's k-bit preparation of a quantized ``model``: every weight frozen, the non-quantized
    half-precision ones (norms, embeddings) cast to float32 for stable updates. Gradient
    checkpointing stays the Trainer's setting. ``selective_parts`` (the strategy's parts that would
    train the base's own weights) are refused, naming them: those weights are stored quantized."""
    if selective_parts:
        raise ValueError(
            f"strategy part(s) {', '.join(selective_parts)} train the base model's own weights, which "
            "model_quantization stores in 4/8 bits and cannot update; use a reparameterization (lora, dora, ...), "
            "adapter or prompt strategy, or drop model_quantization")
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
