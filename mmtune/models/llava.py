"""LLaVA-1.5, and the built-in world model: plain LLaVA, or LLaVA with a resampler projector
(``mmtune_world_llava``, same module paths; see ``mmtune.models.resampler``)."""
from mmtune.models.family import ModelFamily, register_family

register_family(
    ModelFamily(
        name="llava",
        model_types=("llava", "mmtune_world_llava"),
        vision_encoder="model.vision_tower",
        projector="model.multi_modal_projector",
        embeddings="model.language_model.embed_tokens",
        language_layers="model.language_model.layers",
        language_norm="model.language_model.norm",
        lm_head="lm_head",
        description="LLaVA-1.5: CLIP vision tower, MLP projector, Llama/Vicuna decoder",
    )
)
