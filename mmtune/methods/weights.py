"""The weight-space maths of the posterior methods: tune first, then interpolate or merge weights
(WiSE-FT, task arithmetic, TIES, DARE). Functions act on plain state dicts so they work on any family and on
LoRA runs once merged; the per-tensor merge rules are PEFT's (``peft.utils.merge_utils``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from peft.utils import merge_utils

StateDict = Mapping[str, torch.Tensor]


def _mergeable(t: torch.Tensor) -> bool:
    # Integer buffers (position ids, counters) are not weights: they are copied, never averaged.
    return torch.is_floating_point(t)


def _check_keys(base_sd: StateDict, other: StateDict, what: str) -> None:
    missing = sorted(set(base_sd) ^ set(other))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{what} and the base state dict hold different tensors ({shown}); merge LoRA/adapter "
            "runs into plain weights first (strategies.merge_for_export)"
        )
    for k, t in base_sd.items():
        if other[k].shape != t.shape:
            raise ValueError(f"tensor {k}: {what} has shape {tuple(other[k].shape)}, base {tuple(t.shape)}")


def task_vector(base_sd: StateDict, tuned_sd: StateDict) -> dict[str, torch.Tensor]:
    """What tuning changed: tuned - base for every floating tensor (Ilharco et al., 2023)."""
    _check_keys(base_sd, tuned_sd, "tuned state dict")
    return {
        k: tuned_sd[k].float() - t.float() for k, t in base_sd.items() if _mergeable(t)
    }


def wise_ft(base_sd: StateDict, tuned_sd: StateDict, alpha: float) -> dict[str, torch.Tensor]:
    """WiSE-FT: (1 - alpha) * base + alpha * tuned; alpha 0 is the base, 1 the tuned model."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"wise_ft alpha must lie in [0, 1], got {alpha}")
    _check_keys(base_sd, tuned_sd, "tuned state dict")
    return {
        k: (torch.lerp(t.float(), tuned_sd[k].float(), alpha).to(t.dtype) if _mergeable(t) else tuned_sd[k].clone())
        for k, t in base_sd.items()
    }


def _apply(
    base_sd: StateDict,
    task_vectors: Sequence[StateDict],
    scale: float,
    combine: Callable[[list[torch.Tensor]], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """base + scale * combine(per-tensor task vectors), tensor by tensor."""
    if not task_vectors:
        raise ValueError("merging needs at least one task vector")
    out: dict[str, torch.Tensor] = {}
    for k, t in base_sd.items():
        if not _mergeable(t):
            out[k] = t.clone()
            continue
        for i, tv in enumerate(task_vectors):
            if k not in tv:
                raise ValueError(f"task vector {i} has no tensor {k}; build it with task_vector(base, tuned)")
        merged = combine([tv[k].float() for tv in task_vectors])
        out[k] = (t.float() + scale * merged).to(t.dtype)
    return out


def _weights(n: int, weights: Sequence[float] | None) -> torch.Tensor:
    if weights is None:
        return torch.ones(n)
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} merge weights for {n} task vectors")
    return torch.tensor(list(weights), dtype=torch.float32)


def task_arithmetic(
    base_sd: StateDict, task_vectors: Sequence[StateDict], scale: float = 1.0, weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """base + scale * sum_i w_i * tau_i."""
    w = _weights(len(task_vectors), weights)
    return _apply(base_sd, task_vectors, scale, lambda ts: merge_utils.task_arithmetic(ts, w))


def ties_merge(
    base_sd: StateDict,
    task_vectors: Sequence[StateDict],
    density: float = 0.2,
    scale: float = 1.0,
    weights: Sequence[float] | None = None,
    majority_sign_method: str = "total",
) -> dict[str, torch.Tensor]:
    """TIES (Yadav et al., 2023): keep the top ``density`` magnitudes of each task vector, elect a
    sign per weight, average the values that agree with it; then base + scale * that."""
    w = _weights(len(task_vectors), weights)
    return _apply(
        base_sd, task_vectors, scale,
        lambda ts: merge_utils.ties(ts, w, density, majority_sign_method=majority_sign_method),
    )


def dare(
    base_sd: StateDict,
    task_vectors: Sequence[StateDict],
    density: float = 0.5,
    scale: float = 1.0,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    sign_election: bool = False,
) -> dict[str, torch.Tensor]:
    """DARE (Yu et al., 2024): drop each delta with probability 1 - density, rescale the kept ones
    by 1/density, then sum (``dare_linear``) or TIES-elect signs (``sign_election``, dare_ties)."""
    w = _weights(len(task_vectors), weights)
    rule = merge_utils.dare_ties if sign_election else merge_utils.dare_linear
    # PEFT draws the drop masks from the global RNG; a forked, seeded RNG keeps merges reproducible
    # without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _apply(base_sd, task_vectors, scale, lambda ts: rule(ts, w, density))


# Merge methods by name, for configs and the bench's merging row.
MERGE_METHODS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "task_arithmetic": task_arithmetic,
    "ties": ties_merge,
    "dare": dare,
}


def merge_task_vectors(
    base_sd: StateDict, task_vectors: Sequence[StateDict], method: str, **options
) -> dict[str, torch.Tensor]:
    """Merge with a method named in ``MERGE_METHODS`` (options go to that function)."""
    if method not in MERGE_METHODS:
        raise ValueError(f"unknown merge method {method!r}; choose one of {', '.join(MERGE_METHODS)}")
    return MERGE_METHODS[method](base_sd, task_vectors, **options)
