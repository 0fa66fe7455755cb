"""A learnable-query resampler projector (the world model's optional interface), as a registered LLaVA variant.

A resampler swaps LLaVA's per-patch MLP for learnable queries that cross-attend to all patches, so
each image token can gather from anywhere in the image. With as many queries as patches the
``LlavaProcessor`` (16 ``<image>`` tokens) stays unchanged.

The model is ``LlavaForConditionalGeneration`` with only its projector replaced. Importing this
module registers its config and model with transformers' Auto classes in-process (no remote code),
so ``save_pretrained``/``from_pretrained`` and ``mmtune.models.load_model`` round-trip it. The
default MLP world model stays a plain ``LlavaConfig`` that any LLaVA tool loads without mmtune.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

MODEL_TYPE = "mmtune_world_llava"


class ResamplerProjector(nn.Module):
    """Learnable queries cross-attend (multi-head, pre-LayerNorm) to the projected patches, then a
    residual GELU MLP: ``(B, patches, vision_hidden) -> (B, num_queries, text_hidden)``."""

    def __init__(self, vision_hidden: int, text_hidden: int, num_patches: int, num_queries: int, num_heads: int) -> None:
        super().__init__()
        if text_hidden % num_heads:
            raise ValueError(f"resampler text_hidden {text_hidden} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.input_proj = nn.Linear(vision_hidden, text_hidden)
        self.position = nn.Parameter(torch.empty(num_patches, text_hidden))
        self.queries = nn.Parameter(torch.empty(num_queries, text_hidden))
        self.norm_queries = nn.LayerNorm(text_hidden)
        self.norm_patches = nn.LayerNorm(text_hidden)
        self.q_proj = nn.Linear(text_hidden, text_hidden)
        self.k_proj = nn.Linear(text_hidden, text_hidden)
        self.v_proj = nn.Linear(text_hidden, text_hidden)
        self.o_proj = nn.Linear(text_hidden, text_hidden)
        self.norm_mlp = nn.LayerNorm(text_hidden)
        self.mlp = nn.Sequential(nn.Linear(text_hidden, 2 * text_hidden), nn.GELU(), nn.Linear(2 * text_hidden, text_hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every output term O(1), like the world's MLP projector (``world.model.build_base_model``):
        fan-in scaled linears, zero biases, unit-scale queries and positions.

        Query i starts equal to patch i's position embedding, with identity query and key
        projections, so it attends mostly to its own patch (~0.7 of its attention at init, seed 0,
        against ~0.06 from random projections): the resampler starts as a per-patch (per grid
        cell) projector and learns to gather wider context, instead of starting with 16 near-equal
        averages of the image.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features ** -0.5)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.position)
        with torch.no_grad():
            shared = min(len(self.queries), len(self.position))
            self.queries[:shared] = self.position[:shared]
            nn.init.normal_(self.queries[shared:])
        nn.init.eye_(self.q_proj.weight)
        nn.init.eye_(self.k_proj.weight)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        batch, patches, _ = image_features.shape
        hidden = self.queries.shape[-1]
        keys = self.norm_patches(self.input_proj(image_features) + self.position[:patches])
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, N, H) -> (B, heads, N, H / heads)
            return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.q_proj(self.norm_queries(queries))), heads(self.k_proj(keys)), heads(self.v_proj(keys))
        )
        x = queries + self.o_proj(attended.transpose(1, 2).reshape(batch, -1, hidden))
        return x + self.mlp(self.norm_mlp(x))


class WorldLlavaConfig(LlavaConfig):
    """``LlavaConfig`` under its own model type, so the Auto classes build the resampler model."""

    model_type = MODEL_TYPE
    projector_type: str = "resampler"


class WorldLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """LLaVA with ``model.multi_modal_projector`` a ``ResamplerProjector``; everything else, the
    module paths mmtune's LLaVA family resolves included, is LLaVA's."""

    config: WorldLlavaConfig
    config_class = WorldLlavaConfig

    def __init__(self, config: WorldLlavaConfig) -> None:
        if config.projector_type != "resampler":
            raise ValueError(f"projector_type {config.projector_type!r} is not supported; use 'resampler'")
        super().__init__(config)
        vision, text = config.vision_config, config.text_config
        # Several feature layers arrive concatenated along the hidden dimension (as for LLaVA's MLP).
        layers = 1 if isinstance(config.vision_feature_layer, int) else len(config.vision_feature_layer)
        # One query per feature LlavaModel.get_image_features passes on, so the processor's image
        # token count (patches, plus CLS under the "full" strategy) still matches.
        patches = (vision.image_size // vision.patch_size) ** 2
        if config.vision_feature_select_strategy == "full":
            patches += 1
        self.model.multi_modal_projector = ResamplerProjector(
            vision.hidden_size * layers, text.hidden_size, num_patches=patches, num_queries=patches,
            num_heads=text.num_attention_heads,
        )


AutoConfig.register(MODEL_TYPE, WorldLlavaConfig, exist_ok=True)
AutoModelForImageTextToText.register(WorldLlavaConfig, WorldLlavaForConditionalGeneration, exist_ok=True)
