"""Mixing data sources by ratio: target data with general (replay) or text-only data, seeded.

Text-only samples mix in like any other ("hybrid composition"): the collator handles batches
with and without images.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from mmtune.config import ConfigError
from mmtune.data.demonstrations import SELECTIONS, with_demonstrations
from mmtune.data.readers import read_records
from mmtune.data.sample import Sample


@dataclass
class SourceStats:
    """What one source contributed: ``drawn`` of its ``available`` samples."""

    index: int
    ratio: float
    available: int
    drawn: int
    with_replacement: bool  # True when the source was too small and some samples repeat


class Mixture(list):
    """The mixed samples (a plain list) plus ``stats``, one entry per source."""

    def __init__(self, samples: Sequence[Sample], stats: list[SourceStats]) -> None:
        super().__init__(samples)
        self.stats = stats


def _counts(ratios: list[float], n: int) -> list[int]:
    """Split ``n`` by ``ratios`` exactly (largest remainder), so counts always sum to ``n``."""
    exact = [r * n for r in ratios]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _draw(samples: list[Sample], k: int, rng: random.Random) -> list[Sample]:
    """``k`` samples; every sample appears ``k // len`` times before any appears once more."""
    repeats, rest = divmod(k, len(samples))
    return samples * repeats + rng.sample(samples, rest)


def mix_sources(sources: list[tuple[list[Sample], float]], n: int | None = None, seed: int = 0) -> Mixture:
    """``n`` samples drawn from the sources in proportion to their ratios, shuffled, seeded.

    ``n=None`` takes as many as the sources allow without repeating any sample. A source too
    small for its share is repeated (``stats[i].with_replacement``) rather than shrinking the mix.
    """
    if not sources:
        raise ValueError("mix_sources needs at least one (samples, ratio) source")
    for i, (samples, ratio) in enumerate(sources):
        if ratio < 0:
            raise ValueError(f"data source {i} has ratio {ratio}; ratios must be >= 0")
        if ratio > 0 and not samples:
            raise ValueError(f"data source {i} has ratio {ratio} but no samples; give it ratio 0 or fix its path")
    total = sum(ratio for _, ratio in sources)
    if total <= 0:
        raise ValueError("every data source has ratio 0; give at least one a positive ratio")
    shares = [ratio / total for _, ratio in sources]
    if n is None:
        n = min(int(len(samples) / share) for (samples, _), share in zip(sources, shares) if share > 0)
    rng = random.Random(seed)
    mixed: list[Sample] = []
    stats = []
    for i, ((samples, ratio), k) in enumerate(zip(sources, _counts(shares, n))):
        mixed += _draw(list(samples), k, rng) if k else []
        stats.append(SourceStats(i, ratio, len(samples), k, with_replacement=k > len(samples)))
    rng.shuffle(mixed)
    return Mixture(mixed, stats)


@dataclass
class DataSourceConfig:
    """One data source in a YAML config: where it is and its share of the mix."""

    path: str = field(metadata={"help": "LLaVA JSON, messages JSONL, HF dataset dir or parquet file"})
    root: str | None = field(default=None, metadata={"help": "image folder; default: the file's folder"})
    ratio: float = field(default=1.0, metadata={"help": "relative share of the mixed set"})
    format: str | None = field(default=None, metadata={"help": "reader name; default: from the suffix"})
    limit: int | None = field(default=None, metadata={"help": "use a seeded random subset of this size"})
    icl_shots: int = field(default=0, metadata={
        "help": "turn each record k-shot: k demonstrations from this same source as earlier turns (ICL tuning)"})
    icl_select: str = field(default="random", metadata={
        "help": "how demonstrations are drawn: random, balanced (over answers), nearest (question text)"})

    def __post_init__(self) -> None:
        if self.icl_shots < 0:
            raise ConfigError(f"data source {self.path}: icl_shots must be >= 0 (0 = records as they are), got {self.icl_shots}")
        if self.icl_select not in SELECTIONS:
            raise ConfigError(f"data source {self.path}: icl_select {self.icl_select!r} is not one of {', '.join(SELECTIONS)}")


def load_sources(configs: list[DataSourceConfig], seed: int = 0) -> list[tuple[list[Sample], float]]:
    """Read each configured source (``limit`` -> a seeded subset in file order; ``icl_shots`` -> k-shot
    records whose demonstrations come from that subset) for ``mix_sources``."""
    rng = random.Random(seed)
    out = []
    for config in configs:
        samples = read_records(config.path, root=config.root, fmt=config.format)
        if config.limit is not None and config.limit < len(samples):
            keep = sorted(rng.sample(range(len(samples)), config.limit))
            samples = [samples[i] for i in keep]
        if config.icl_shots:
            samples = with_demonstrations(samples, config.icl_shots, rule=config.icl_select, seed=seed)
        out.append((samples, config.ratio))
    return out
