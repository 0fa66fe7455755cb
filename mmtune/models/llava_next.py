"""LLaVA-NeXT (LLaVA-1.6): LLaVA with any-resolution tiling; same module layout."""
from mmtune.models.family import ModelFamily, register_family

register_family(
    ModelFamily(
        name="llava_next",
        model_types=("llava_next",),
        vision_encoder="model.vision_tower",
        projector="model.multi_modal_projector",
        embeddings="model.language_model.embed_tokens",
        language_layers="model.language_model.layers",
        language_norm="model.language_model.norm",
        lm_head="lm_head",
        extra_paths=(("model.image_newline", "projector"),),  # learned row separator, trained with it
        description="LLaVA-NeXT: any-resolution image tiles, MLP projector, Llama/Mistral decoder",
    )
)
