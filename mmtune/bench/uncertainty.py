"""How sure a bench score is: a 95% percentile bootstrap over test samples, paired with the base.

A test set of n samples is resampled with replacement B times (B = 1000 by default); each resample
re-scores the base and the tuned model on the *same* drawn samples, so E and every seen delta are
paired differences. The draws of a set depend only on its name, n, B and the bootstrap seed, so every
row, seed and the base see identical resamples and a re-render gives identical intervals. Seeds of a
row are averaged inside each resample; the interval is the 2.5th and 97.5th percentiles of the B
resampled values (numpy's default linear interpolation between order statistics).

A set's per-sample scores come with the statistic that turns them into its headline score:
``mean`` (accuracy-like scores, and CIDEr-D's per-image scores), ``f1`` (POPE: per sample
[tp, fp, fn] counts, F1 = 2 tp / (2 tp + fp + fn)) or ``ratio`` (CHAIR_i: per sample [hallucinated
mentions, mentions], the ratio of the sums, 0 without mentions as CHAIR counts it).
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=-1)


def _f1(values: np.ndarray) -> np.ndarray:
    tp, fp, fn = (values[..., k].sum(axis=-1) for k in range(3))
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 200.0 * tp / np.maximum(denominator, 1), 0.0)


def _ratio(values: np.ndarray) -> np.ndarray:
    part, whole = values[..., 0].sum(axis=-1), values[..., 1].sum(axis=-1)
    return np.where(whole > 0, 100.0 * part / np.maximum(whole, 1), 0.0)


# statistic name -> score (0-100 scale) of per-sample values, vectorised over leading resample axes
STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"mean": _mean, "f1": _f1, "ratio": _ratio}


@dataclass(frozen=True)
class SampleScores:
    """One test set's per-sample scores, in test-sample order, and the statistic that scores them."""

    statistic: str
    values: np.ndarray  # (n,) for mean, (n, 3) for f1, (n, 2) for ratio

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"per-sample statistic {self.statistic!r} is unknown; use one of {', '.join(STATISTICS)}")

    def __len__(self) -> int:
        return len(self.values)

    def score(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The headline score of the whole set, or of each resample when ``indices`` is (B, n)."""
        values = self.values if indices is None else self.values[indices]
        return STATISTICS[self.statistic](values)

    @classmethod
    def from_record(cls, record: Mapping) -> SampleScores:
        return cls(record["statistic"], np.asarray(record["values"], dtype=float))

    def to_record(self) -> dict:
        return {"statistic": self.statistic, "values": np.round(self.values, 6).tolist()}


def resample_indices(name: str, n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) sample indices drawn with replacement, fixed by (set name, n, resamples, seed)."""
    if n <= 0:
        raise ValueError(f"test set {name!r} has no samples to resample")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), n])
    return rng.integers(0, n, size=(resamples, n))


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval: the (1 - level)/2 and (1 + level)/2 quantiles."""
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(np.asarray(replicates, dtype=float), [tail, 100.0 - tail])
    return float(low), float(high)


def paired_delta(after: SampleScores, before: SampleScores, indices: np.ndarray) -> np.ndarray:
    """after - before on each resample of the same test samples (one value per resample)."""
    if len(after) != len(before):
        raise ValueError(f"per-sample scores cover {len(after)} samples after tuning but {len(before)} before; "
                         "both must be scored on the same test samples")
    return after.score(indices) - before.score(indices)


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of a - b, where ``a`` and ``b`` are two rows' replicates on the same resamples.

    Rows of one target are resampled jointly (``resample_indices`` draws the same test samples for every row),
    so subtracting replicate by replicate pairs the rows sample by sample: noise both rows share on a drawn
    sample cancels, as in ``paired_delta``. Replicates of different targets are independent draws of
    independent sets, and their difference is the bootstrap of a difference of independent scores.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"replicates of shapes {a.shape} and {b.shape} cannot be paired; "
                         "both rows must be bootstrapped with the same number of resamples")
    return percentile_interval(a - b, level)


@dataclass(frozen=True)
class SeedScores:
    """What one seed's run of a row contributes: its target and seen sets' per-sample scores."""

    target: SampleScores
    seen: Mapping[str, SampleScores]


def row_replicates(target: str, seeds: Sequence[SeedScores], base: Mapping[str, SampleScores],
                   ranges: Mapping[str, float], resamples: int = RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Resampled E, F, O (and each seen set's raw delta, key ``seen:<name>``) of a row, seeds averaged.

    E and F use the bench's scale: 100 x change / the metric's full range (``ranges``; see scores.py).
    """
    if not seeds:
        raise ValueError(f"no runs with per-sample scores for target {target!r}")
    names = sorted(seeds[0].seen)
    idx = {name: resample_indices(name, len(base[name]), resamples, seed) for name in [target, *names]}
    e = np.mean([paired_delta(s.target, base[target], idx[target]) for s in seeds], axis=0)
    e = 100.0 * e / ranges[target]
    raw = {name: np.mean([paired_delta(s.seen[name], base[name], idx[name]) for s in seeds], axis=0)
           for name in names}
    f = np.mean([100.0 * raw[name] / ranges[name] for name in names], axis=0)
    return {"E": e, "F": f, "O": e + f, **{f"seen:{name}": raw[name] for name in names}}
