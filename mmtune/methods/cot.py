"""CoT tuning (data phase): train on the rationale then the answer in one response (one-stage
chain-of-thought; ``mmtune.recipes.cot`` has the two-stage Multimodal-CoT pipeline). A record's rationale is
its ``rationale`` field or written in its answer; the world's downstream questions get theirs from the exact
scene. A bench row ``lora+cot`` is scored on its target with the answer read after the rationale."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mmtune.data.rationale import ONE_STAGE_ANSWER, WORLD_ONE_STAGE_ANSWER, one_stage, split_rationale
from mmtune.data.sample import Sample
from mmtune.methods.base import register_method
from mmtune.world.rationale import RATIONALE_WRITERS, with_rationale


@dataclass
class CotConfig:
    """No settings: the record's own rationale is trained on."""


def _is_world(sample: Sample) -> bool:
    return sample.meta.get("task") in RATIONALE_WRITERS and "image_id" in sample.meta


def with_rationale_answer(sample: Sample) -> Sample:
    """The one-stage CoT record of ``sample``; a world sample without a rationale gets its scene's
    (in the world's words: "... the answer is X.")."""
    if _is_world(sample):
        if not sample.meta.get("rationale"):
            sample = with_rationale(sample)
        return one_stage(sample, WORLD_ONE_STAGE_ANSWER)
    answers = sample.text_of("assistant")
    if not sample.meta.get("rationale") and not (answers and split_rationale(answers[-1])):
        raise ValueError(f"cot: record {sample.id!r} has no rationale; give it a 'rationale' field or write its "
                         "answer as '<rationale> So the answer is X.'")
    return one_stage(sample, ONE_STAGE_ANSWER)


@dataclass(frozen=True)
class Cot:
    def apply(self, samples: Sequence[Sample], seen: Sequence[Sample], seed: int) -> list[Sample]:
        return [with_rationale_answer(s) for s in samples]


@register_method("cot", "data", "CoT tuning: train on rationale then answer (not an anti-forgetting method; "
                 "the row's target answers are read after the rationale)", CotConfig)
def cot(config: CotConfig) -> Cot:
    return Cot()
