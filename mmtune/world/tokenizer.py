"""The world's word-level tokenizer and its real ``LlavaProcessor``, built locally.

Why not ``mmtune.models.tiny.build_word_tokenizer``: its WordPiece/whitespace decoding writes
"[0.12, 0.3]" back as "[ 0 . 12 , ...", and world answers (boxes, letters, words) must decode to
exactly the reference text. Metaspace pre-tokenization keeps the spaces in the tokens, so
``decode(encode(text)) == text`` for every world text. The chat template is the shared one.
"""
from __future__ import annotations

from functools import lru_cache

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import LlavaProcessor, PreTrainedTokenizerFast

from mmtune.models.processors import chat_template, clip_llava_processor
from mmtune.world.language import vocabulary
from mmtune.world.scenes import IMAGE_SIZE

PATCH_SIZE = 16  # 64 px / 16 = 4 x 4 = 16 image tokens per image, one per scene grid cell
SPACE = "\u2581"
PAD, UNK, BOS = "<pad>", "<unk>", "<s>"
TURN_START, TURN_END, IMAGE = "<|im_start|>", "<|im_end|>", "<image>"
ROLES = ("user", "assistant", "system")


@lru_cache(maxsize=1)
def world_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer: each world word, digit and symbol is one token, with or without a
    leading space (a lone space before a symbol is its own token); ``<|im_end|>`` ends a turn."""
    vocab: dict[str, int] = {}
    for token in (PAD, UNK, BOS, SPACE, "\n", *(p + w for w in [*vocabulary(), *ROLES] for p in ("", SPACE))):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # A newline is its own token, so the generation prompt "assistant\n" ends exactly where the
    # training text does and the answer's first token is the same in both.
    backend.normalizer = normalizers.Replace(Regex(r"[ \t]+"), " ")
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", "isolated"),
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first"),
        pre_tokenizers.Punctuation("isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    backend.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="first")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=TURN_END,
        extra_special_tokens=[TURN_START, TURN_END, IMAGE],
        image_token=IMAGE,
        chat_template=chat_template(IMAGE, TURN_START, TURN_END),
        padding_side="right",
    )


def world_processor() -> LlavaProcessor:
    """A real LlavaProcessor: CLIP preprocessing at 64 px, ``<image>`` expanded to 16 tokens."""
    return clip_llava_processor(world_tokenizer(), IMAGE_SIZE, PATCH_SIZE)
