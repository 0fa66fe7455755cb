"""PaliGemma: SigLIP vision tower, linear projector, Gemma decoder with a prefix-LM mask."""
from mmtune.models.family import ModelFamily, register_family

register_family(
    ModelFamily(
        name="paligemma",
        model_types=("paligemma",),
        vision_encoder="model.vision_tower",
        projector="model.multi_modal_projector",
        embeddings="model.language_model.embed_tokens",
        language_layers="model.language_model.layers",
        language_norm="model.language_model.norm",
        lm_head="lm_head",  # tied to the embeddings: its weight is listed under embed_tokens
        description="PaliGemma: SigLIP, linear projector, Gemma; answers attend to a bidirectional prefix",
        images_per_prompt=1,  # its input is image tokens, BOS, prefix: the processor puts BOS after the last image
    )
)
