"""Every tiny family runs the real processor -> forward -> generate path."""
from __future__ import annotations

import torch

from mmtune.models.tiny import (
    COMMON_WORDS,
    build_tiny,
    build_word_tokenizer,
    chat_template,
)

from .conftest import CONVERSATION


def _inputs(processor, image, messages, **kwargs):
    text = processor.apply_chat_template(messages, tokenize=False, **kwargs)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    inputs.pop("labels", None)  # PaliGemma's processor adds labels from its suffix; we set our own
    return inputs


def test_forward_gives_finite_loss(tiny, image):
    model, processor = tiny
    inputs = _inputs(processor, image, CONVERSATION)
    labels = inputs["input_ids"].clone()
    labels[labels == model.config.get_text_config().pad_token_id] = -100
    with torch.no_grad():
        out = model(**inputs, labels=labels)
    assert torch.isfinite(out.loss)
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert out.logits.shape[-1] == len(processor.tokenizer)


def test_image_placeholder_expands_to_image_tokens(tiny, image):
    model, processor = tiny
    inputs = _inputs(processor, image, CONVERSATION)
    image_token_id = getattr(model.config, "image_token_id", None) or model.config.image_token_index
    n_image_tokens = int((inputs["input_ids"] == image_token_id).sum())
    # Few image tokens keep the models fast; the model itself checks the count matches its features.
    assert 0 < n_image_tokens <= 64


def test_generate_produces_new_tokens(tiny, image):
    model, processor = tiny
    inputs = _inputs(processor, image, CONVERSATION[:1], add_generation_prompt=True)
    prompt_len = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    new = out[0, prompt_len:]
    assert 1 <= len(new) <= 4
    assert all(0 <= int(t) < len(processor.tokenizer) for t in new)


def test_generation_prompt_ends_with_assistant_header(tiny):
    _, processor = tiny
    text = processor.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert text.endswith("assistant\n")
    assert "What color is the square?" in text


def test_same_seed_same_weights_other_seed_differs(family):
    a, _ = build_tiny(family, seed=3)
    b, _ = build_tiny(family, seed=3)
    c, _ = build_tiny(family, seed=4)
    name, pa = next((n, p) for n, p in a.named_parameters() if "layers.0" in n and p.dim() == 2)
    assert torch.equal(pa, dict(b.named_parameters())[name])
    assert not torch.equal(pa, dict(c.named_parameters())[name])


def test_word_tokenizer_round_trips_words_and_keeps_specials_whole():
    tok = build_word_tokenizer(["red", "circle"], ["<image>", "<|im_end|>"], chat_template("<image>"),
                               eos_token="<|im_end|>", image_token="<image>")
    ids = tok("<image>red circle zebra<|im_end|>", add_special_tokens=False)["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[:3] == ["<image>", "red", "circle"]
    assert tokens[-1] == "<|im_end|>"
    assert "[UNK]" not in tokens  # unknown ASCII words fall back to characters
    assert tok.decode(ids, skip_special_tokens=True) == "red circle zebra"
    assert tok.image_token == "<image>" and tok.eos_token == "<|im_end|>"


def test_chat_template_marks_only_assistant_tokens():
    tok = build_word_tokenizer(list(COMMON_WORDS), ["<image>", "<|im_start|>", "<|im_end|>"],
                               chat_template("<image>"), eos_token="<|im_end|>")
    out = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(tok.convert_ids_to_tokens(out["input_ids"]), out["assistant_masks"]) if m]
    assert marked == ["The", "square", "is", "red", ".", "<|im_end|>"]
