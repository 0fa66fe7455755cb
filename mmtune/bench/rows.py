"""Bench rows: a tuning strategy plus the anti-forgetting methods applied around it.

A row is written in the strategy spec syntax; its parts that name a method of ``mmtune methods``
(``mmtune.methods``) are methods, the rest the strategy: ``lora+replay(fraction=0.2)``,
``full+ewc(weight=100)``, ``full+wise_ft(alpha=0.5)``, ``full+merge(method=ties, density=0.5)``.
Data- and loss-phase methods change how the run trains; a posterior method reuses the finished
runs of the row without it (its *source* row), so they are trained once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mmtune.methods.base import Method, is_method, resolve_methods
from mmtune.strategies.spec import format_spec, parse_spec


@dataclass(frozen=True)
class Row:
    """One bench row, parsed; ``label`` is its canonical text, used in ids and reports."""

    label: str
    strategy: str
    methods: tuple[str, ...] = ()  # the data- and loss-phase methods, canonical specs
    posterior: str | None = None  # the posterior method's canonical spec
    source: str | None = None  # label of the row whose trained runs a posterior row reuses
    quantized: dict | None = None  # ``quantized(bits=4, ...)``: the base loaded in 4/8 bits (QLoRA)

    @property
    def trains(self) -> bool:
        return self.posterior is None

    @property
    def strategy_name(self) -> str:
        """The first strategy's name, which picks the row's learning rate."""
        return parse_spec(self.strategy)[0].name

    def training_methods(self) -> list[Method]:
        return resolve_methods(list(self.methods))

    def posterior_method(self) -> Method | None:
        return resolve_methods(self.posterior)[0] if self.posterior else None

    def quantization(self):
        """The row's ``QuantizationConfig`` (None for a full-precision base)."""
        if self.quantized is None:
            return None
        from mmtune.models.quantization import QuantizationConfig

        return QuantizationConfig(**self.quantized)


QUANTIZED = "quantized"  # a row part loading the base in 4 or 8 bits: ``lora+quantized(bits=4)`` is QLoRA


def parse_row(text: str) -> Row:
    """Parse a row like ``lora(r=8)+replay(fraction=0.2)``; errors name the row and the fix."""
    parts = parse_spec(text)
    quantized = [p for p in parts if p.name == QUANTIZED]
    if quantized:
        row = parse_row(format_spec([p for p in parts if p.name != QUANTIZED]))
        try:
            from mmtune.models.quantization import QuantizationConfig

            QuantizationConfig(**quantized[0].kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"bench row {text!r}: quantized(...) takes bits, type, double_quant, compute_dtype ({e})") from e
        if len(quantized) > 1 or not row.trains:
            raise ValueError(f"bench row {text!r}: one quantized(...) part, on a row that trains (a posterior method "
                             "needs full-precision weights to act on)")
        return Row(format_spec(parts), row.strategy, row.methods, quantized=dict(quantized[0].kwargs))
    strategy = [p for p in parts if not is_method(p.name)]
    if not strategy:
        raise ValueError(f"bench row {text!r} names no tuning strategy; write e.g. lora+{text}")
    try:
        methods = resolve_methods([p for p in parts if is_method(p.name)])
    except (KeyError, ValueError) as e:
        raise ValueError(f"bench row {text!r}: {e.args[0] if e.args else e}") from e
    label = format_spec(parts)
    training = tuple(m.label for m in methods if m.phase != "posterior")
    posterior = [m for m in methods if m.phase == "posterior"]
    if not posterior:
        return Row(label, format_spec(strategy), training)
    source = parse_row(format_spec([p for p in parts if p.name != posterior[0].name]))
    return Row(label, source.strategy, source.methods, posterior=posterior[0].label, source=source.label)


def slug(text: str) -> str:
    """A file-name-safe form of a label or task name."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")
