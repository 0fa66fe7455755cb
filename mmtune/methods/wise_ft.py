"""WiSE-FT (posterior phase; Wortsman et al., 2022): interpolate the finished run's weights with the
base's, ``(1 - alpha) * base + alpha * tuned``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmtune.methods.base import StateDict, check_number, register_method


@dataclass
class WiseFTConfig:
    alpha: float = field(default=0.5, metadata={"help": "weight of the tuned model: 0 = the base, 1 = the tuned run"})

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha, low=0.0, high=1.0)


@dataclass(frozen=True)
class WiseFT:
    alpha: float
    runs: str = "one"

    def apply(self, base: StateDict, tuned: Sequence[StateDict]) -> StateDict:
        from mmtune.methods.weights import wise_ft

        (only,) = tuned
        return wise_ft(base, only, self.alpha)


@register_method("wise_ft", "posterior", "interpolate the tuned weights with the base (WiSE-FT)", WiseFTConfig)
def wise_ft_method(config: WiseFTConfig) -> WiseFT:
    return WiseFT(float(config.alpha))
