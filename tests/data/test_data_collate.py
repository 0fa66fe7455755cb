"""SFTCollator / GenerationCollator on real processors of two families (llava, qwen2_vl)."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from mmtune.data.collate import (
    IGNORE_INDEX,
    GenerationCollator,
    ImageTruncationError,
    SFTCollator,
    length_grouped_order,
    length_of,
)
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.models.tiny import build_tiny, tiny_families

# Every tiny family; llava and qwen2_vl are the ones the exact-position tests pin down.
FAMILIES = tiny_families()
TURN_STARTS = {"<|im_start|>", "<start_of_turn>"}
TURN_ENDS = {"<|im_end|>", "<end_of_utterance>", "<end_of_turn>"}


@pytest.fixture(scope="module")
def tiny():
    """family -> (model, processor), each built once for the module, on first use."""
    built: dict = {}

    def get(family: str):
        if family not in built:
            built[family] = build_tiny(family)
        return built[family]

    return get


def _image(color: str = "red", size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, color)


def _one_image_sample(sample_id: str = "a") -> Sample:
    return Sample(sample_id, [user_turn("what color is the cat"), assistant_turn("red")], [_image()])


def _multi_turn_text_sample() -> Sample:
    return Sample(
        "b",
        [
            {"role": "system", "content": "you are a cat"},
            user_turn("how many", n_images=0),
            assistant_turn("two"),
            user_turn("and dog", n_images=0),
            assistant_turn("one dog"),
        ],
    )


def _expected_answer_positions(tokens: list[str]) -> list[int]:
    """By hand from the turn layout: tokens after ``<turn start> assistant`` through the turn's end."""
    positions, inside = [], False
    for i, tok in enumerate(tokens):
        if inside:
            positions.append(i)
            inside = tok not in TURN_ENDS
        elif tok == "assistant" and i > 0 and tokens[i - 1] in TURN_STARTS:
            inside = True
    return positions


def _check_labels(batch: dict, processor) -> None:
    for b in range(batch["input_ids"].shape[0]):
        ids, labels = batch["input_ids"][b], batch["labels"][b]
        tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
        expected = _expected_answer_positions(tokens)
        assert expected, "every test sample has an answer"
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[expected] = True
        assert torch.equal(labels[mask], ids[mask])
        assert (labels[~mask] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_only_on_assistant_answers(tiny, family):
    _, processor = tiny(family)
    batch = SFTCollator(processor)([_one_image_sample(), _multi_turn_text_sample()])
    _check_labels(batch, processor)
    # The image tensors the family's processor makes come through.
    assert batch["pixel_values"].numel() > 0
    if family == "qwen2_vl":
        assert batch["image_grid_thw"].shape == (1, 3)
    image_id = processor.image_token_id
    assert (batch["input_ids"][0] == image_id).sum() > 0
    assert (batch["labels"][batch["input_ids"] == image_id] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_images_inside_an_answer_are_not_labels(tiny, family):
    """An interleaved document written as the assistant's turn: its words are labels, the tokens its
    images expand to (the placeholders, and Idefics3's image markers) are not. Qwen2-VL's
    <|vision_start|>/<|vision_end|> come from its chat template, not the processor, and stay labels."""
    _, processor = tiny(family)
    document = {"role": "assistant", "content": [
        {"type": "image"}, {"type": "text", "text": " red cat. "}, {"type": "image"}, {"type": "text", "text": " blue dog."}]}
    sample = Sample("doc", [user_turn("write", n_images=0), document], [_image("red"), _image("blue")])
    batch = SFTCollator(processor)([sample])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    labelled = [tokens[i] for i in (labels != IGNORE_INDEX).nonzero().flatten().tolist()]
    words = [t.lstrip("\u2581\u0120") for t in labelled]
    assert [w for w in words if w in {"red", "cat", "blue", "dog"}] == ["red", "cat", "blue", "dog"]
    assert (ids == processor.image_token_id).sum() > 0
    assert (labels[ids == processor.image_token_id] == IGNORE_INDEX).all()
    image_markers = {"<fake_token_around_image>", "<global-img>"}
    assert not image_markers & set(labelled), labelled
    assert tokens[(labels != IGNORE_INDEX).nonzero().flatten()[-1]] in TURN_ENDS


@pytest.mark.parametrize(
    "family, image_positions, answer_positions",
    [
        # <|im_start|> user, 16 image tokens ((32/8)^2 CLIP patches) at 2..17, 5 question words,
        # <|im_end|>, <|im_start|> assistant, then "red" at 26 and its <|im_end|> at 27.
        ("llava", range(2, 18), [26, 27]),
        # <|im_start|> user <|vision_start|>, 4 <|image_pad|> (a 4x4 patch grid merged 2x2) at
        # 3..6, <|vision_end|>, 5 words, <|im_end|>, <|im_start|> assistant, "red" 16, <|im_end|> 17.
        ("qwen2_vl", range(3, 7), [16, 17]),
    ],
)
def test_exact_label_positions(tiny, family, image_positions, answer_positions):
    _, processor = tiny(family)
    batch = SFTCollator(processor)([_one_image_sample()])
    ids = batch["input_ids"][0]
    image_at = (ids == processor.image_token_id).nonzero().flatten().tolist()
    assert image_at == list(image_positions)
    assert processor.tokenizer.convert_ids_to_tokens(ids[answer_positions].tolist())[0] == "red"
    assert len(ids) == answer_positions[-1] + 1
    labelled = (batch["labels"][0] != IGNORE_INDEX).nonzero().flatten().tolist()
    assert labelled == answer_positions
    assert torch.equal(batch["labels"][0, answer_positions], ids[answer_positions])


def test_paligemma_prefix_is_bidirectional_only_before_the_answer(tiny):
    _, processor = tiny("paligemma")
    batch = SFTCollator(processor)([_one_image_sample(), _multi_turn_text_sample()])
    for b in range(2):
        first_answer = int((batch["labels"][b] != IGNORE_INDEX).nonzero().min())
        types = batch["token_type_ids"][b]
        assert (types[:first_answer] == 0).all() and (types[first_answer:] == 1).all()


def test_right_padding_and_multi_turn(tiny):
    _, processor = tiny("llava")
    batch = SFTCollator(processor)([_one_image_sample(), _multi_turn_text_sample()])
    pad = processor.tokenizer.pad_token_id
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert batch["input_ids"].shape[1] == max(lengths)
    short = min(range(2), key=lambda b: lengths[b])
    assert (batch["input_ids"][short, lengths[short]:] == pad).all()
    assert batch["attention_mask"][short, : lengths[short]].all()
    tokens = processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][1].tolist())
    answered = [tokens[i] for i in (batch["labels"][1] != IGNORE_INDEX).nonzero().flatten().tolist()]
    assert answered == ["two", "<|im_end|>", "one", "dog", "<|im_end|>"]


def test_batch_trains_the_llava_model(tiny):
    model, processor = tiny("llava")
    batch = SFTCollator(processor)([_one_image_sample(), _multi_turn_text_sample()])
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_keeps_image_tokens_or_refuses(tiny, family):
    _, processor = tiny(family)
    full = SFTCollator(processor)([_one_image_sample()])
    n = full["input_ids"].shape[1]
    image_end = int((full["input_ids"][0] == processor.image_token_id).nonzero().max()) + 1
    cut = SFTCollator(processor, max_length=n - 1)([_one_image_sample()])
    assert cut["input_ids"].shape[1] == n - 1
    assert torch.equal(cut["input_ids"][0], full["input_ids"][0, : n - 1])
    assert torch.equal(cut["labels"][0], full["labels"][0, : n - 1])
    with pytest.raises(ImageTruncationError, match="sample 'x'"):
        SFTCollator(processor, max_length=image_end - 1)([_one_image_sample("x")])


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_collator_left_pads_prompts(tiny, family):
    _, processor = tiny(family)
    samples = [_one_image_sample(), _multi_turn_text_sample()]
    inputs, prompts = GenerationCollator(processor)(samples)
    assert all(p.endswith("assistant\n") for p in prompts)
    assert "one dog" not in prompts[1] and "two" in prompts[1]
    mask = inputs["attention_mask"]
    assert mask[:, -1].all(), "left padding: every prompt ends at the last column"
    short = int(mask.sum(dim=1).argmin())
    n_pad = int((mask[short] == 0).sum())
    assert n_pad > 0 and (inputs["input_ids"][short, :n_pad] == processor.tokenizer.pad_token_id).all()
    assert not mask[short, :n_pad].any()


def test_generation_batch_runs_generate(tiny):
    model, processor = tiny("llava")
    inputs, _ = GenerationCollator(processor)([_one_image_sample(), _multi_turn_text_sample()])
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > inputs["input_ids"].shape[1]


def test_length_of_and_grouped_order(tiny):
    _, processor = tiny("llava")
    assert length_of(_one_image_sample(), processor) == 28
    lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    order = length_grouped_order(lengths, batch_size=2, seed=0)
    assert sorted(order) == list(range(8))
    assert order == length_grouped_order(lengths, batch_size=2, seed=0)
    assert lengths[order[0]] == max(lengths), "the longest batch goes first (OOM early)"


def _varied_samples() -> list[Sample]:
    """Questions and answers of different lengths, images of different sizes, one multi-turn chat."""
    out = [Sample(f"v{i}", [user_turn("what color is the cat" + " please" * i), assistant_turn("red " * (i + 1))],
                  [_image(size=(40 + 20 * (i % 3), 30 + 7 * i))]) for i in range(5)]
    out.append(Sample("chat", [{"role": "system", "content": "you are a cat"}, user_turn("how many"),
                               assistant_turn("two"), user_turn("and dog", n_images=0), assistant_turn("one dog")],
                      [_image("blue")]))
    return out


def _assert_same_batch(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cut", [False, True])
def test_cached_encodings_stack_to_the_whole_batch(tiny, family, cut):
    _, processor = tiny(family)
    samples = _varied_samples()
    # cut: the longest samples lose their last answer tokens (images come first, so they stay whole)
    max_length = max(length_of(s, processor) for s in samples) - 3 if cut else None
    whole = SFTCollator(processor, max_length=max_length)(samples)
    cached = SFTCollator(processor, max_length=max_length, cache_bytes=1 << 30)
    _assert_same_batch(cached(samples), whole)  # first epoch: each sample encoded alone, then stacked
    _assert_same_batch(cached(samples[::-1]), SFTCollator(processor, max_length=max_length)(samples[::-1]))
    assert cached._cache.stackable and len(cached._cache.entries) == len(samples)


def test_cache_falls_back_to_whole_batches(tiny):
    _, processor = tiny("llava")
    samples = _varied_samples()
    with_text_only = samples + [_multi_turn_text_sample()]  # no image tensors: the keys differ
    cached = SFTCollator(processor, cache_bytes=1 << 30)
    _assert_same_batch(cached(with_text_only), SFTCollator(processor)(with_text_only))
    assert not cached._cache.stackable
    _assert_same_batch(cached(samples), SFTCollator(processor)(samples))  # encoded whole from then on

    small = SFTCollator(processor, cache_bytes=1)  # full after its first batch
    _assert_same_batch(small(samples[:2]), SFTCollator(processor)(samples[:2]))
    _assert_same_batch(small(samples), SFTCollator(processor)(samples))  # new samples: encoded whole
    assert len(small._cache.entries) == 2
    assert small._cache.splittable  # one image per sample: the first batch's rows were each sample's own


def test_validation_leaves_each_sample_encoded_for_training(tiny):
    from mmtune.data.validate import validate_samples

    _, processor = tiny("llava")
    samples = _varied_samples()
    collator = SFTCollator(processor, cache_bytes=1 << 30)
    assert validate_samples(samples, processor=processor, collator=collator).ok
    assert len(collator._cache.entries) == len(samples)
    encodes = []
    collator.encode = lambda batch: encodes.append(batch) or SFTCollator.encode(collator, batch)
    _assert_same_batch(collator(samples[::-1]), SFTCollator(processor)(samples[::-1]))
    assert encodes == []  # training's batches are stacked from validation's encodings
