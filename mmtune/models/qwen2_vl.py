"""Qwen2-VL and Qwen2.5-VL: the vision tower ends in a patch merger that is the projector."""
from __future__ import annotations

from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor

from mmtune.models.family import ModelFamily, register_family

_PATHS = {
    "vision_encoder": "model.visual",
    "projector": "model.visual.merger",  # nested in the vision tower; ModelGroups resolves longest prefix first
    "embeddings": "model.language_model.embed_tokens",
    "language_layers": "model.language_model.layers",
    "language_norm": "model.language_model.norm",
    "lm_head": "lm_head",
}

# Qwen2-VL writes boxes on a 0-1000 grid; Qwen2.5-VL in absolute pixels of the image as its processor
# resized it (QwenLM/Qwen2.5-VL cookbooks/spatial_understanding.ipynb scales by image_grid_thw x 14).
register_family(ModelFamily(name="qwen2_vl", model_types=("qwen2_vl",), description="Qwen2-VL",
                            box_format="norm1000", **_PATHS))
register_family(ModelFamily(name="qwen2_5_vl", model_types=("qwen2_5_vl",), description="Qwen2.5-VL",
                            box_format="resized_pixel", **_PATHS))


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without its video processor, which needs torchvision.

    transformers refuses to build the stock processor without a video processor, so where
    torchvision is not installed mmtune uses this one for image-text work.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video processor (see ``Qwen2VLImageOnlyProcessor``)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)
