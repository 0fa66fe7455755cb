"""Tiny random models of every family, built offline from configs, for tests and smoke runs.

Each builder returns ``(model, processor)`` where the processor is the family's real processor
class wrapping a tokenizer built locally with the ``tokenizers`` library, so the whole
processor -> forward -> generate path of the real architecture runs in well under a second.
"""
from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

from mmtune.models.processors import chat_template, clip_llava_processor

TinyBuilder = Callable[[], tuple[PreTrainedModel, ProcessorMixin]]

_PAD, _UNK = "[PAD]", "[UNK]"

# Common words get one token each; any other ASCII word falls back to characters (WordPiece
# "##" continuations), so no text a test or the world writes turns into [UNK].
COMMON_WORDS: tuple[str, ...] = tuple(
    """the a an of and or to in on at is are was be it this that there these what which who
    where how many much color colour shape size left right top bottom middle center above
    below next near far behind front image picture photo scene object objects thing one two
    three four five six seven eight nine ten zero yes no not red green blue yellow orange
    purple pink brown black white gray grey circle square triangle star cross ring big small
    large tiny tall short long wide with without has have do does can answer question
    describe caption count how number letter word text box region area point first second
    third last only all some any more less than same different between inside outside
    contains shows show find locate user assistant system you your i me my we our they them
    he she his her its cat dog man woman person people car tree house sky water road table
    chair""".split()  # noqa: SIM905
)


def build_word_tokenizer(
    words: list[str], special_tokens: list[str], chat_template: str, **special: str
) -> PreTrainedTokenizerFast:
    """A fast tokenizer over ``words`` + ASCII characters, built locally (no hub download).

    ``special`` names roles of special tokens (``eos_token="<|im_end|>"``, ``image_token=...``);
    transformers turns non-standard ``*_token`` roles into attributes processors read
    (e.g. ``tokenizer.image_token``).
    """
    chars = [c for c in string.printable if not c.isspace()]
    vocab: dict[str, int] = {}
    for token in [_PAD, _UNK, *words, *(w.capitalize() for w in words), *chars]:
        vocab.setdefault(token, len(vocab))
    for c in chars:
        vocab.setdefault("##" + c, len(vocab))
    backend = Tokenizer(models.WordPiece(vocab, unk_token=_UNK, max_input_chars_per_word=100))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=_UNK,
        pad_token=_PAD,
        extra_special_tokens=[t for t in special_tokens if t not in vocab],
        chat_template=chat_template,
        **special,
    )


def _text_kwargs(tokenizer: PreTrainedTokenizerFast, **overrides) -> dict:
    """A 2-layer decoder with grouped-query attention, shared by every family's text config."""
    kwargs = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    kwargs.update(overrides)
    return kwargs


# The ViT-style vision towers (CLIP, SigLIP, Idefics3's): 2 layers of width 32.
_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def _chatml_tokenizer(image_tokens: list[str], image: str, **special: str) -> PreTrainedTokenizerFast:
    turn = ["<|im_start|>", "<|im_end|>"]
    return build_word_tokenizer(
        list(COMMON_WORDS), turn + image_tokens, chat_template(image), eos_token="<|im_end|>", **special
    )


def _llava() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tokenizer = _chatml_tokenizer(["<image>"], "<image>", image_token="<image>")
    image_size, patch = 32, 8
    processor = clip_llava_processor(tokenizer, image_size, patch)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            **_VISION, image_size=image_size, patch_size=patch,
        ),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaForConditionalGeneration(config), processor


def _llava_next() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    tokenizer = _chatml_tokenizer(["<image>"], "<image>", image_token="<image>")
    image_size, patch = 32, 8
    grid = [[image_size, image_size]]  # one "any resolution" grid: base view + one tile
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
            image_grid_pinpoints=grid,
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            **_VISION, image_size=image_size, patch_size=patch,
        ),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=grid,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaNextForConditionalGeneration(config), processor


def _qwen_vl(config_cls, model_cls, processor_cls, vision: dict) -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import Qwen2VLImageProcessorPil

    vision_tokens = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"]
    tokenizer = _chatml_tokenizer(
        vision_tokens, "<|vision_start|><|image_pad|><|vision_end|>",
        image_token="<|image_pad|>", video_token="<|video_pad|>",
    )
    patch, merge = 8, 2
    side = patch * merge * 2  # every image becomes a 4x4 patch grid -> 4 merged image tokens
    processor = processor_cls(
        image_processor=Qwen2VLImageProcessorPil(
            size={"shortest_edge": side * side, "longest_edge": side * side},
            patch_size=patch, merge_size=merge, temporal_patch_size=2,
        ),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in vision_tokens}
    # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    config = config_cls(
        text_config=_text_kwargs(tokenizer, rope_parameters=rope),
        vision_config=dict(
            depth=2, num_heads=2, patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2, **vision
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return model_cls(config), processor


def _qwen2_vl() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from mmtune.models.qwen2_vl import Qwen2VLImageOnlyProcessor

    vision = {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}
    return _qwen_vl(Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageOnlyProcessor, vision)


def _qwen2_5_vl() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from mmtune.models.qwen2_vl import Qwen2_5_VLImageOnlyProcessor

    vision = {
        "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64, "window_size": 32, "fullatt_block_indexes": [1]
    }
    return _qwen_vl(Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLImageOnlyProcessor, vision)


def _idefics3() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )

    grid_tags = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    image_tokens = ["<fake_token_around_image>", "<image>", "<global-img>", *grid_tags]
    tokenizer = build_word_tokenizer(
        list(COMMON_WORDS), ["<|im_start|>", "<end_of_utterance>", *image_tokens],
        chat_template("<image>", turn_end="<end_of_utterance>"), eos_token="<end_of_utterance>",
    )
    image_size, patch, scale = 32, 8, 2
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
            do_image_splitting=False,
        ),
        tokenizer=tokenizer,
        image_seq_len=(image_size // patch) ** 2 // scale**2,  # pixel shuffle merges scale x scale patches
        chat_template=tokenizer.chat_template,
    )
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            **_VISION, image_size=image_size, patch_size=patch,
        ),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Idefics3ForConditionalGeneration(config), processor


def _paligemma() -> tuple[PreTrainedModel, ProcessorMixin]:
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    tokenizer = build_word_tokenizer(
        list(COMMON_WORDS), ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<image>"],
        chat_template("<image>", turn_start="<start_of_turn>", turn_end="<end_of_turn>"),
        bos_token="<bos>", eos_token="<end_of_turn>", image_token="<image>",
    )
    image_size, patch = 32, 8
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // patch) ** 2
    # The processor adds PaliGemma's 1152 <locXXXX>/<segXXX> tokens, so the vocabulary is
    # only final after it is built.
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   chat_template=tokenizer.chat_template)
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(
            **_VISION, image_size=image_size, patch_size=patch, projection_dim=64,
        ),
        text_config=GemmaConfig(**_text_kwargs(tokenizer, head_dim=16)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=64,
        hidden_size=64,
    )
    return PaliGemmaForConditionalGeneration(config), processor


_BUILDERS: dict[str, TinyBuilder] = {
    "llava_next": _llava_next,
    "idefics3": _idefics3,
    "paligemma": _paligemma,
    "llava": _llava,
    "qwen2_vl": _qwen2_vl,
    "qwen2_5_vl": _qwen2_5_vl,
}


def tiny_families() -> list[str]:
    """Names ``build_tiny`` accepts."""
    return sorted(_BUILDERS)


def build_tiny(family: str, seed: int = 0) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A tiny randomly initialised model of ``family`` and its processor (seeded, offline)."""
    if family not in _BUILDERS:
        raise KeyError(f"no tiny builder for model family {family!r}; known: {', '.join(tiny_families())}")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family]()
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    return model.eval(), processor


def save_tiny(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny model + processor as a plain transformers checkpoint (safetensors)."""
    out = Path(out_dir)
    model, processor = build_tiny(family, seed=seed)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
