"""LLaMA-Adapter (Zhang et al., 2023): learned adaption prompts with zero-init gated attention.

In each of the top L decoder layers, the queries also attend to K learned prompt vectors (keyed
and valued by the layer's own frozen k/v projections); that attention is softmaxed on its own,
scaled by a per-head gate initialised to zero, and added to the layer's attention output.

Hand-written because PEFT's ``AdaptionPromptConfig`` attaches only to top-level models whose
``model_type`` is llama/mistral/gpt2, never to the language model inside an MLLM. The prompt
attention runs as a forward hook on each attention module, so base parameter names stay
unchanged and it works with the KV cache (prompt keys are recomputed, never cached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.models.generic import unwrap
from mmtune.strategies.registry import register_strategy

ATTENTION_ATTRIBUTES = ("self_attn", "attention")
PROMPT_ATTRIBUTE = "mmtune_adaption_prompt"


class AdaptionPrompt(nn.Module):
    """K prompt vectors and a per-head zero-init gate for one attention module."""

    def __init__(self, attention: nn.Module, length: int, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        ref = attention.q_proj.weight
        self.prompt = nn.Parameter(torch.randn(length, hidden_size, device=ref.device, dtype=ref.dtype))
        self.gate = nn.Parameter(torch.zeros(1, num_heads, 1, 1, device=ref.device, dtype=ref.dtype))
        self.num_heads = num_heads
        self.head_dim = attention.head_dim

    def after_attention(self, attn: nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple:
        """Forward hook (with kwargs): add the gated prompt attention to the attention output."""
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        cos, sin = kwargs["position_embeddings"] if "position_embeddings" in kwargs else args[1]
        b, t, _ = hidden.shape
        q = attn.q_proj(hidden).view(b, t, -1, self.head_dim).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        half = self.head_dim // 2
        q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
        k = attn.k_proj(self.prompt).view(1, len(self.prompt), -1, self.head_dim).transpose(1, 2)
        v = attn.v_proj(self.prompt).view(1, len(self.prompt), -1, self.head_dim).transpose(1, 2)
        groups = self.num_heads // k.shape[1]  # grouped-query attention shares k/v heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scale = getattr(attn, "scaling", 1 / math.sqrt(self.head_dim))  # Gemma scales queries its own way
        scores = torch.softmax((q @ k.transpose(-1, -2)).float() * scale, dim=-1).to(q.dtype)
        extra = (self.gate * scores @ v).transpose(1, 2).reshape(b, t, -1)
        # o_proj is linear: project the extra term with its weight only (its bias is already in output).
        added = output[0] + F.linear(extra, attn.o_proj.weight)
        return (added, *output[1:])


@dataclass
class LlamaAdapterConfig:
    n: int = field(default=10, metadata={"help": "adaption prompt length per layer"})
    layers: int = field(default=8, metadata={"help": "number of top decoder layers that get prompts"})

    def __post_init__(self) -> None:
        for name in ("n", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@register_strategy(
    "llama_adapter",
    "additive",
    "zero-gated adaption prompts in the top layers' attention (LLaMA-Adapter)",
    LlamaAdapterConfig,
    mergeable=False,
)
def llama_adapter(model: nn.Module, groups: ModelGroups, cfg: LlamaAdapterConfig) -> nn.Module:
    base = unwrap(model)
    if cfg.layers > groups.num_layers:
        raise ValueError(
            f"llama_adapter(layers={cfg.layers}): the model has only {groups.num_layers} decoder layers"
        )
    text = base.config.get_text_config()
    if "mrope_section" in (getattr(text, "rope_parameters", None) or {}):
        raise ValueError(
            f"llama_adapter: {type(base).__name__} uses multimodal RoPE (M-RoPE); only standard rotary "
            "embeddings (Llama, Mistral, Gemma, Qwen2 text) are supported; use adapter or lora instead"
        )
    layers = groups.module(base, "language_layers")
    for i in range(groups.num_layers - cfg.layers, groups.num_layers):
        attn = next((getattr(layers[i], a) for a in ATTENTION_ATTRIBUTES if hasattr(layers[i], a)), None)
        if attn is None or not all(
            hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim")
        ):
            raise ValueError(
                f"llama_adapter: decoder layer {i} ({type(layers[i]).__name__}) has no Llama-style attention "
                f"({'/'.join(ATTENTION_ATTRIBUTES)} with q/k/v/o_proj)"
            )
        block = AdaptionPrompt(attn, cfg.n, text.hidden_size, text.num_attention_heads)
        attn.add_module(PROMPT_ATTRIBUTE, block)
        attn.register_forward_hook(block.after_attention, with_kwargs=True)
    return model
