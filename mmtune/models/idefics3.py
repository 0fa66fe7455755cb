"""Idefics3 and SmolVLM: SigLIP-style vision model, pixel-shuffle connector, Llama decoder."""
from mmtune.models.family import ModelFamily, register_family

register_family(
    ModelFamily(
        name="idefics3",
        model_types=("idefics3", "smolvlm"),
        vision_encoder="model.vision_model",
        projector="model.connector",
        embeddings="model.text_model.embed_tokens",
        language_layers="model.text_model.layers",
        language_norm="model.text_model.norm",
        lm_head="lm_head",
        description="Idefics3 / SmolVLM: pixel-shuffle connector, Llama/SmolLM decoder",
    )
)
