"""Model merging (posterior phase): add the task vectors (tuned - base) of every target's finished
run of a row to the base, by task arithmetic (Ilharco et al., 2023), TIES (Yadav et al., 2023) or
DARE (Yu et al., 2024); one merged model is then scored on every target."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmtune.methods.base import StateDict, check_number, register_method

MERGE_RULES = ("task_arithmetic", "ties", "dare")


@dataclass
class MergeConfig:
    method: str = field(default="task_arithmetic", metadata={"help": f"one of {', '.join(MERGE_RULES)}"})
    scale: float = field(default=1.0, metadata={"help": "multiplier of the merged task vector"})
    density: float | None = field(default=None, metadata={
        "help": "ties/dare: share of each task vector kept (default 0.2 for ties, 0.5 for dare)"})
    seed: int = field(default=0, metadata={"help": "dare: seed of the drop masks"})

    def __post_init__(self) -> None:
        if self.method not in MERGE_RULES:
            raise ValueError(f"method {self.method!r} is unknown; use one of {', '.join(MERGE_RULES)}")
        check_number("scale", self.scale)
        if self.density is not None and (self.method == "task_arithmetic" or not 0 < self.density <= 1):
            raise ValueError(f"density {self.density!r}: give it to ties or dare only, in (0, 1]")


@dataclass(frozen=True)
class Merge:
    config: MergeConfig
    runs: str = "targets"

    def apply(self, base: StateDict, tuned: Sequence[StateDict]) -> StateDict:
        from mmtune.methods.weights import merge_task_vectors, task_vector

        options = {"scale": self.config.scale}
        if self.config.density is not None:
            options["density"] = self.config.density
        if self.config.method == "dare":
            options["seed"] = self.config.seed
        return merge_task_vectors(base, [task_vector(base, t) for t in tuned], self.config.method, **options)


@register_method("merge", "posterior",
                 "merge the task vectors of every target's run (task arithmetic / TIES / DARE)", MergeConfig)
def merge(config: MergeConfig) -> Merge:
    return Merge(config)
