"""Collation: Samples -> model-ready batches; loss only on assistant tokens, image tokens never cut.

Assistant spans are found in characters of the rendered chat text (the prefix rendered up to each
assistant turn vs. the prefix including it), then mapped onto tokens with the tokenizer's offset
mapping of the *expanded* text the processor really tokenizes. Working in characters rather than
token counts keeps the labels right when a tokenizer merges across the prompt/answer boundary.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.trainer_pt_utils import get_length_grouped_indices

from mmtune.data.processor_layout import layout_of, shift_position
from mmtune.data.sample import Sample, content_parts, load_image

IGNORE_INDEX = -100
# Keys we ask the processor for only to compute labels; the model must not receive them.
_LABELING_KEYS = ("offset_mapping", "text_replacement_offsets")


class ImageTruncationError(ValueError):
    """Cutting a sample to ``max_length`` would cut its image tokens."""

    def __init__(self, sample_id: str, length: int, image_end: int, max_length: int) -> None:
        self.sample_id, self.length, self.image_end, self.max_length = sample_id, length, image_end, max_length
        super().__init__(
            f"sample {sample_id!r} is {length} tokens long and its image tokens end at token {image_end}, "
            f"beyond max_length={max_length}; truncating would cut image tokens. Raise max_length, or drop "
            f"such samples with `mmtune data validate --max-length {max_length} --skip-invalid`"
        )


class ChatTemplateError(ValueError):
    """A processor's chat template renders a conversation in a way labels cannot be derived from."""


def render(processor: ProcessorMixin, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
           tools: list[dict[str, Any]] | None = None) -> str:
    """The chat text of ``messages`` with the processor's template (image parts become placeholders);
    ``tools`` (JSON schemas, a sample's ``meta["tools"]``) go to the template's ``tools=``, which writes
    them in the family's own tool-calling format."""
    normalized = [{**m, "content": content_parts(m)} for m in messages]
    extra = {"tools": tools} if tools else {}
    return processor.apply_chat_template(
        normalized, tokenize=False, add_generation_prompt=add_generation_prompt, **extra
    )


def assistant_char_spans(processor: ProcessorMixin, sample: Sample) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text of ``sample`` and the character span of each assistant turn's answer.

    A span runs from the end of the generation prompt to the end of the turn's end-of-turn marker;
    whitespace after that marker is template layout, not something the model should predict.
    """
    messages, tools = sample.messages, sample.meta.get("tools")
    text = render(processor, messages, tools=tools)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(processor, messages[:i], add_generation_prompt=True, tools=tools)
        # the conversation through its last turn is the whole text: one render fewer per sample
        through = (text if i == len(messages) - 1 else render(processor, messages[: i + 1], tools=tools)).rstrip()
        if not (text.startswith(through) and through.startswith(before)):
            raise ChatTemplateError(
                f"sample {sample.id!r}: the chat template of {type(processor).__name__} renders turn {i} "
                "differently depending on what follows it, so assistant tokens cannot be located; "
                "use a template whose rendering of a conversation prefix is a prefix of the whole"
            )
        spans.append((len(before), len(through)))
    return text, spans


def _expanded_position(pos: int, insertions: list[tuple[int, int]], replacements: list[dict[str, Any]]) -> int:
    """Where character ``pos`` of the rendered text lands in the text the tokenizer really sees."""
    pos = shift_position(pos, insertions)
    shift = 0
    for r in replacements:
        start, end = r["span"]
        if end <= pos:
            shift += len(r["replacement"]) - (end - start)
    return pos + shift


def _images_of(samples: Sequence[Sample], prompt_only: bool = False) -> list:
    images = []
    for s in samples:
        n = Sample(s.id, s.prompt_messages()).num_image_parts if prompt_only else len(s.images)
        images.extend(load_image(ref) for ref in s.images[:n])
    return images


def _encode(processor: ProcessorMixin, texts: list[str], images: list, **kwargs: Any) -> BatchFeature:
    return processor(text=texts, images=images or None, padding=True, return_tensors="pt", **kwargs)


def _image_token_ids(processor: ProcessorMixin) -> torch.Tensor | None:
    """The ids of the processor's image and video placeholder tokens (``image_token`` etc.), if it names any."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = {getattr(processor, f"{kind}_token_id", None) for kind in ("image", "video")}
    for kind in ("image", "video"):
        token = getattr(processor, f"{kind}_token", None)
        if isinstance(token, str):
            ids.add(tokenizer.convert_tokens_to_ids(token))
    ids = {i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id}
    return torch.tensor(sorted(ids)) if ids else None


class SFTCollator:
    """Samples -> ``input_ids, attention_mask, labels`` + the family's image tensors, right-padded.

    ``labels`` are -100 everywhere except each assistant answer and its end-of-turn token. With
    ``max_length``, a longer sample is cut after its last image token, or refused (naming the
    sample) when the cut would fall inside the image tokens.
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None, *,
                 cache_bytes: int = 0) -> None:
        self.processor = processor
        self.max_length = max_length
        self._cache = _EncodingCache(cache_bytes) if cache_bytes > 0 else None
        self._image_ids = _image_token_ids(processor)

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """The batch of ``samples``. With a cache, each sample is encoded once per collator (its
        tokens, labels and image tensors kept) and later batches only pad and stack: the same tensors
        as encoding the batch whole. A family whose batches do not stack that way (images of
        different shapes, tiles that pad per batch) is encoded whole, batch by batch."""
        if self._cache is not None and samples:
            merged = self._cache.batch(samples, self.encode, self.processor.tokenizer.pad_token_id)
            if merged is not None:
                if "token_type_ids" in merged and layout_of(self.processor).prefix_lm:
                    merged["token_type_ids"] = _prefix_lm_token_types(merged["labels"])  # padding included
                return merged
        return self.encode(samples)

    def encode(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """``samples`` rendered, tokenized and labelled together, one processor call."""
        rendered = [assistant_char_spans(self.processor, s) for s in samples]
        texts = [text for text, _ in rendered]
        images = _images_of(samples)
        batch = _encode(
            self.processor, texts, images,
            padding_side="right", return_offsets_mapping=True, return_text_replacement_offsets=True,
        )
        offsets = batch["offset_mapping"]
        replacements = batch.get("text_replacement_offsets") or [[] for _ in samples]
        layout = layout_of(self.processor)
        data = {k: v for k, v in batch.items() if k not in _LABELING_KEYS}
        input_ids, attention = data["input_ids"], data["attention_mask"].bool()
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        lengths = attention.sum(dim=1).tolist()
        for b, (text, spans) in enumerate(rendered):
            # Processors change the text only when images are passed (PaliGemma's BOS).
            insertions = layout.insertions(self.processor, text) if images else []
            starts, ends = offsets[b, :, 0], offsets[b, :, 1]
            for start, end in spans:
                s = _expanded_position(start, insertions, replacements[b])
                e = _expanded_position(end, insertions, replacements[b])
                answer = attention[b] & (ends > s) & (starts < e)
                labels[b, answer] = input_ids[b, answer]
            # An image inside an answer (an interleaved document written as the assistant's turn) is
            # input, not something to predict: the tokens the processor expands it to leave the labels
            # (markers a chat template writes around it, Qwen2-VL's <|vision_start|>, stay).
            for r in replacements[b]:
                if r.get("type") in ("image", "video"):
                    s, e = r["new_span"]
                    labels[b, (starts >= s) & (ends <= e) & (ends > starts)] = IGNORE_INDEX
            if images and self._image_ids is not None:
                labels[b, torch.isin(input_ids[b], self._image_ids)] = IGNORE_INDEX
            if self.max_length is not None and lengths[b] > self.max_length:
                lengths[b] = _cut_point(samples[b], starts, replacements[b], lengths[b], self.max_length)
                attention[b, lengths[b]:] = False
        labels[~attention] = IGNORE_INDEX
        data["input_ids"] = input_ids.masked_fill(~attention, self.processor.tokenizer.pad_token_id)
        data["attention_mask"] = attention.long()
        data["labels"] = labels
        if layout.prefix_lm and "token_type_ids" in data:
            data["token_type_ids"] = _prefix_lm_token_types(labels)
        width, seq_len = max(lengths), input_ids.shape[1]
        return {
            k: v[:, :width] if torch.is_tensor(v) and v.dim() >= 2 and v.shape[:2] == (len(samples), seq_len) else v
            for k, v in data.items()
        }


class _EncodingCache:
    """Each sample's own encoding (as a batch of one), kept while it fits in ``max_bytes``.

    Keyed by the sample object: a training set holds the same objects every epoch. The samples a
    batch sees for the first time are encoded together and split into rows where that gives each
    row exactly its own encoding (checked on the first batch), else one by one. Once a batch cannot
    be stacked from its samples' encodings, or the cache is full, ``batch`` returns None for every
    later batch with an uncached sample, and the caller encodes the batch whole.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.nbytes, self.stackable = max_bytes, 0, True
        self.splittable: bool | None = None  # unknown until the first batch is checked
        self.entries: dict[int, tuple[Sample, dict[str, torch.Tensor]]] = {}

    def batch(self, samples: Sequence[Sample], encode, pad_token_id: int) -> dict[str, torch.Tensor] | None:
        if not self.stackable:
            return None
        misses = list({id(s): s for s in samples if id(s) not in self.entries}.values())
        if misses:
            if self.nbytes >= self.max_bytes:
                return None
            try:
                encodings = self._encode_each(misses, encode)
            except _AloneUnencodable:  # a family that encodes some samples only in company (text-only
                self.stackable = False  # PaliGemma): batches are encoded whole from now on
                return None
            except Exception:  # a bad record: encoded whole, the batch path raises (or validation names it)
                return None
            for sample, encoding in zip(misses, encodings):
                self.entries[id(sample)] = (sample, encoding)
                self.nbytes += sum(v.numel() * v.element_size() for v in encoding.values() if torch.is_tensor(v))
        merged = stack_encodings([self.entries[id(s)][1] for s in samples], pad_token_id)
        self.stackable = merged is not None
        return merged

    def _encode_each(self, samples: list[Sample], encode) -> list[dict[str, torch.Tensor]]:
        rows = None
        if self.splittable is not False and all(len(s.images) == 1 for s in samples):
            rows = split_encodings(encode(samples), len(samples))
            if self.splittable is None:
                alone = encode(samples[:1])
                self.splittable = rows is not None and list(rows[0]) == list(alone) and all(
                    torch.equal(rows[0][k], alone[k]) for k in alone)
            if not self.splittable:
                rows = None
        if rows is not None:
            return rows
        try:
            return [encode([s]) for s in samples]
        except Exception as e:
            encode(samples)  # raises too: a bad record, which the whole batch's encoding names
            raise _AloneUnencodable from e


class _AloneUnencodable(Exception):
    """A batch encodes, but one of its samples does not on its own."""


def split_encodings(batch: dict[str, Any], n: int) -> list[dict[str, torch.Tensor]] | None:
    """A right-padded batch of ``n`` one-image samples -> each row's own encoding, or None unless every
    tensor holds one row per sample (token sequences cut to the row's length)."""
    if not all(torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n for v in batch.values()):
        return None
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    width = batch["input_ids"].shape[1]
    return [{k: v[b:b + 1, :lengths[b]] if v.dim() >= 2 and v.shape[1] == width else v[b:b + 1]
             for k, v in batch.items()} for b in range(n)]


_PAD_VALUES = {"labels": IGNORE_INDEX}


def stack_encodings(encoded: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor] | None:
    """Batches of one -> one right-padded batch, as the processor would have made it; None when the
    tensors other than the token sequences differ in shape across samples (they would need padding
    the processor does its own way) or the samples' keys differ."""
    keys = list(encoded[0])
    if any(list(e) != keys for e in encoded) or not all(torch.is_tensor(v) for e in encoded for v in e.values()):
        return None
    lengths = [e["input_ids"].shape[1] for e in encoded]
    width = max(lengths)
    out = {}
    for key in keys:
        values = [e[key] for e in encoded]
        if all(v.dim() >= 2 and v.shape[:2] == (1, n) for v, n in zip(values, lengths)):
            pad = pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
            values = [torch.nn.functional.pad(v, (0, 0) * (v.dim() - 2) + (0, width - n), value=pad)
                      for v, n in zip(values, lengths)]
        elif any(v.shape[1:] != values[0].shape[1:] for v in values):
            return None
        out[key] = torch.cat(values)
    return out


def _prefix_lm_token_types(labels: torch.Tensor) -> torch.Tensor:
    """0 (bidirectional prefix) before each sample's first answer token, 1 (causal) from it on.

    A processor marks the whole prompt as prefix; left so, answer tokens would see later answer
    tokens during training.
    """
    answered = (labels != IGNORE_INDEX).long()
    return (answered.cumsum(dim=1) > 0).long()


def _cut_point(
    sample: Sample, starts: torch.Tensor, replacements: list[dict[str, Any]], length: int, max_length: int
) -> int:
    """``max_length``, unless that would cut the sample's image tokens: then refuse, naming it."""
    image_end_char = max((r["new_span"][1] for r in replacements), default=0)
    image_end_token = int((starts[:length] < image_end_char).sum())
    if image_end_token > max_length:
        raise ImageTruncationError(sample.id, length, image_end_token, max_length)
    return max_length


class GenerationBatch(NamedTuple):
    """Left-padded prompts for ``model.generate(**inputs)`` and the prompt texts they came from."""

    inputs: BatchFeature
    prompts: list[str]


class GenerationCollator:
    """Samples -> a left-padded prompt batch: the conversation minus its final assistant turn."""

    def __init__(self, processor: ProcessorMixin) -> None:
        self.processor = processor

    def __call__(self, samples: Sequence[Sample]) -> GenerationBatch:
        prompts = [render(self.processor, s.prompt_messages(), add_generation_prompt=True, tools=s.meta.get("tools"))
                   for s in samples]
        inputs = _encode(self.processor, prompts, _images_of(samples, prompt_only=True), padding_side="left")
        return GenerationBatch(inputs, prompts)


def length_of(sample: Sample, processor: ProcessorMixin) -> int:
    """Tokens ``sample`` takes once rendered and its images expanded, as the model sees it."""
    text = render(processor, sample.messages, tools=sample.meta.get("tools"))
    return int(_encode(processor, [text], _images_of([sample]))["input_ids"].shape[1])


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int) -> list[int]:
    """A seeded order putting samples of similar length in the same batch (less padding).

    Uses transformers' megabatch grouping (``LengthGroupedSampler``); recipes can equally pass
    these ``lengths`` to ``LengthGroupedSampler(batch_size, lengths=lengths)``.
    """
    generator = torch.Generator().manual_seed(seed)
    return [int(i) for i in get_length_grouped_indices(list(lengths), batch_size, generator=generator)]
