"""The built-in tiny MLLM: a plain LLaVA (tiny CLIP vision tower + 2-layer MLP projector + tiny
Llama with grouped-query attention), so every tool that loads LLaVA loads it unchanged."""
from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from mmtune.world.scenes import IMAGE_SIZE
from mmtune.world.tokenizer import IMAGE, PATCH_SIZE, world_tokenizer
from mmtune.world.vision import init_feature_extractor

# Sizes per preset: (vision hidden, vision layers, text hidden, text layers, text heads, kv heads).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(v_hidden=64, v_layers=2, v_heads=4, t_hidden=128, t_layers=3, t_heads=4, t_kv=2),
    "small": dict(v_hidden=128, v_layers=4, v_heads=4, t_hidden=256, t_layers=6, t_heads=8, t_kv=2),
}
PROJECTORS = ("mlp",)


def tiny_model_config(preset: str = "tiny", projector: str = "mlp") -> LlavaConfig:
    """A real ``LlavaConfig`` sized for CPU pre-training on the world (16 image tokens)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown world model preset {preset!r}; use one of {sorted(PRESETS)}")
    if projector not in PROJECTORS:
        raise ValueError(
            f"world model projector {projector!r} is not available; use one of {PROJECTORS} "
            "(a learnable-query resampler is not implemented yet)"
        )
    p = PRESETS[preset]
    tokenizer = world_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=p["v_hidden"], intermediate_size=2 * p["v_hidden"], num_hidden_layers=p["v_layers"],
        num_attention_heads=p["v_heads"], image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=p["t_hidden"], intermediate_size=2 * p["t_hidden"],
        num_hidden_layers=p["t_layers"], num_attention_heads=p["t_heads"], num_key_value_heads=p["t_kv"],
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )


def build_base_model(preset: str = "tiny", seed: int = 0, projector: str = "mlp") -> LlavaForConditionalGeneration:
    """The world model before pre-training (seeded): a fixed informative vision encoder (see
    ``world.vision``), random projector and language model; generation stops at ``<|im_end|>``."""
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_model_config(preset, projector))
    init_feature_extractor(model.model.vision_tower, seed)
    # Projector at fan-in scale with zero bias: image features start O(1) and image-dependent,
    # rather than a near-constant prefix the language model learns to ignore.
    for linear in (model.model.multi_modal_projector.linear_1, model.model.multi_modal_projector.linear_2):
        nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
        nn.init.zeros_(linear.bias)
    tokenizer = world_tokenizer()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
