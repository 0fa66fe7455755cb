"""ICL tuning (data phase): each training record becomes a k-shot one, its demonstrations drawn from the
same records (as in-context instruction tuning does, e.g. MIMIC-IT / Otter), so the model is tuned for
few-shot use. A bench row ``full+icl(shots=2)`` is scored k-shot on its target with the same k and rule,
demonstrations drawn from the target's training records."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmtune.data.demonstrations import SELECTIONS, with_demonstrations
from mmtune.data.sample import Sample
from mmtune.methods.base import register_method


@dataclass
class IclConfig:
    shots: int = field(default=2, metadata={"help": "demonstrations before each training record (>= 1)"})
    select: str = field(default="random", metadata={
        "help": f"how they are drawn: {', '.join(SELECTIONS)} (nearest: by the questions' words)"})

    def __post_init__(self) -> None:
        if isinstance(self.shots, bool) or not isinstance(self.shots, int) or self.shots < 1:
            raise ValueError(f"icl: shots must be a whole number >= 1, got {self.shots!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"icl: select {self.select!r} is unknown; use one of {', '.join(SELECTIONS)}")


@dataclass(frozen=True)
class Icl:
    shots: int
    select: str

    def apply(self, samples: Sequence[Sample], seen: Sequence[Sample], seed: int) -> list[Sample]:
        return with_demonstrations(samples, self.shots, rule=self.select, seed=seed)


@register_method("icl", "data", "ICL tuning: records become k-shot, demonstrations from the same records "
                 "(not an anti-forgetting method; the row is scored k-shot)", IclConfig)
def icl(config: IclConfig) -> Icl:
    return Icl(int(config.shots), config.select)
