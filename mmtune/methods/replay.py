"""Replay (data phase): mix seen-task samples into the tuning set, the usual remedy for forgetting."""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmtune.data.sample import Sample
from mmtune.methods.base import check_number, register_method


def replay_count(n_target: int, fraction: float) -> int:
    """How many replay samples make up ``fraction`` of the mixed set built around ``n_target``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"replay fraction must lie in [0, 1), got {fraction} (0.2 = 20% of the tuning set)")
    return round(n_target * fraction / (1.0 - fraction))


def with_replay(
    target_samples: Sequence[Sample], seen_samples: Sequence[Sample], fraction: float, seed: int
) -> list[Sample]:
    """The target samples plus seen samples forming ``fraction`` of the result, shuffled by ``seed``.

    Seen samples are drawn without replacement while they last (then the pool is reshuffled and
    drawn again); replayed copies get ``meta["replay"] = True`` and a unique id.
    """
    n = replay_count(len(target_samples), fraction)
    if n and not seen_samples:
        raise ValueError("replay asks for seen-task samples but none were given; list seen tasks to replay")
    rng = random.Random(seed)
    drawn: list[Sample] = []
    while len(drawn) < n:
        pool = list(seen_samples)
        rng.shuffle(pool)
        drawn.extend(pool[: n - len(drawn)])
    replayed = [
        dataclasses.replace(s, id=f"replay{i}:{s.id}", meta={**s.meta, "replay": True})
        for i, s in enumerate(drawn)
    ]
    mixed = list(target_samples) + replayed
    rng.shuffle(mixed)
    return mixed


@dataclass
class ReplayConfig:
    fraction: float = field(default=0.2, metadata={"help": "share of the tuning set that is seen-task data, in [0, 1)"})

    def __post_init__(self) -> None:
        check_number("fraction", self.fraction)
        replay_count(1, self.fraction)  # the range check, with its message


@dataclass(frozen=True)
class Replay:
    fraction: float

    def apply(self, samples: Sequence[Sample], seen: Sequence[Sample], seed: int) -> list[Sample]:
        return with_replay(samples, seen, self.fraction, seed)


@register_method("replay", "data", "mix seen-task samples into the tuning set", ReplayConfig, needs_seen_data=True)
def replay(config: ReplayConfig) -> Replay:
    return Replay(float(config.fraction))
