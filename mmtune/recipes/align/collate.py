"""Preference batches in the layout TRL's DPO and KTO losses read, built by mmtune's SFT collator.

TRL's vision collators render the prompt and each response separately and concatenate the token
ids; mmtune's collator renders the whole conversation once and labels the assistant tokens from
character spans, which keeps image tokens whole, handles families whose templates merge tokens
across the prompt/answer boundary, and cuts at ``max_length`` only after the last image token.
The labels it produces are exactly TRL's ``completion_mask``.

TRL's trainers take a ``datasets.Dataset``; the rows here are only indices into the records, which
the collator holds (images stay paths until a batch needs them).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset

from mmtune.data.collate import IGNORE_INDEX, SFTCollator
from mmtune.data.preferences import Preference
from mmtune.data.sample import Sample


def index_dataset(n: int) -> Dataset:
    """Rows ``{"index": i}`` for ``i < n``: what TRL's trainers iterate; the collators look records up."""
    return Dataset.from_dict({"index": list(range(n))})


def completion_batch(collator: SFTCollator, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    """``samples`` collated, their assistant-token labels turned into TRL's ``completion_mask``."""
    batch = collator(samples)
    labels = batch.pop("labels")
    batch["completion_mask"] = (labels != IGNORE_INDEX).long()
    return batch


class PairCollator:
    """Index rows -> one batch of ``[chosen_1..chosen_B, rejected_1..rejected_B]`` (TRL's DPO layout):
    ``input_ids``, ``attention_mask``, ``completion_mask`` and the images of each row."""

    def __init__(self, prefs: Sequence[Preference], processor: Any, max_length: int | None = None) -> None:
        self.prefs = list(prefs)
        self.collator = SFTCollator(processor, max_length=max_length)

    def records(self, rows: Sequence[dict[str, Any]]) -> list[Preference]:
        return [self.prefs[int(row["index"])] for row in rows]

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prefs = self.records(rows)
        return completion_batch(self.collator, [p.sample("chosen") for p in prefs]
                                + [p.sample("rejected") for p in prefs])


def unpaired(prefs: Sequence[Preference]) -> list[Preference]:
    """KTO's records: unpaired ones as they are, each pair split into a desirable and an undesirable one
    (as TRL's ``unpair_preference_dataset`` does)."""
    out = []
    for p in prefs:
        if not p.is_paired:
            out.append(p)
            continue
        for text, label in ((p.chosen, True), (p.rejected, False)):
            out.append(Preference(f"{p.id}/{'chosen' if label else 'rejected'}", p.messages, p.images, text,
                                  None, label, p.meta, p.source, p.root))
    return out


class UnpairedCollator(PairCollator):
    """Index rows of KTO records -> ``input_ids``, ``attention_mask``, ``completion_mask``, ``label``, and the
    ``KL_*`` batch: each prompt with the previous row's completion (TRL's mismatched pairs that estimate
    the KL term), under the same images."""

    def __init__(self, prefs: Sequence[Preference], processor: Any, max_length: int | None = None,
                 with_kl: bool = True) -> None:
        super().__init__(prefs, processor, max_length)
        self.with_kl = with_kl

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prefs = self.records(rows)
        samples = [p.sample("chosen") for p in prefs]
        batch = completion_batch(self.collator, samples)
        batch["label"] = torch.tensor([bool(p.label) for p in prefs])
        if self.with_kl:
            previous = samples[-1:] + samples[:-1]
            kl = completion_batch(self.collator, [Sample(s.id, [*s.prompt_messages(), o.messages[-1]], s.images)
                                                  for s, o in zip(samples, previous)])
            batch.update({f"KL_{k}": kl[k] for k in ("input_ids", "attention_mask", "completion_mask")})
        return batch
