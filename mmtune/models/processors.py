"""Processor building blocks of the built-in models (the tiny test families and the world model):
a ChatML-like chat template that marks assistant tokens for loss masking, and a real
``LlavaProcessor`` for a square CLIP-style tower, both built locally without a hub download."""
from __future__ import annotations

from transformers import PreTrainedTokenizerFast, ProcessorMixin


def chat_template(image: str, turn_start: str = "<|im_start|>", turn_end: str = "<|im_end|>") -> str:
    """A ChatML-like template; ``{% generation %}`` marks assistant tokens for loss masking.

    ``image`` is the text each ``{"type": "image"}`` part becomes, the placeholder the family's
    processor expands into image tokens.
    """
    part = (
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}" + image + "{%- elif part['type'] == 'text' -%}"
        "{{ part['text'] }}{%- endif -%}{%- endfor -%}"
    )
    content = "{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}" + part + "{%- endif -%}"
    return (
        "{%- for message in messages -%}"
        + turn_start + "{{ message['role'] + '\\n' }}"
        "{%- if message['role'] == 'assistant' -%}{% generation %}" + content + turn_end + "{% endgeneration %}"
        "{%- else -%}" + content + turn_end + "{%- endif -%}{{ '\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + turn_start + "{{ 'assistant\\n' }}{%- endif -%}"
    )


def clip_llava_processor(tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int) -> ProcessorMixin:
    """A real ``LlavaProcessor`` for a square CLIP tower: ``<image>`` expands to one token per patch."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    return LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=tokenizer.chat_template,
    )
