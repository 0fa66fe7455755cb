"""Tuning strategies: selective, additive and reparameterization, from a one-line spec.

Names are resolved lazily (PEP 562) so ``mmtune --help`` and ``mmtune strategies`` do not import
torch and transformers.
"""
from mmtune.lazy import lazy_exports

_EXPORTS = {
    "apply_strategy": "mmtune.strategies.apply",
    "optimizer_param_groups": "mmtune.strategies.optim",
    "StrategyInfo": "mmtune.strategies.registry",
    "list_strategies": "mmtune.strategies.registry",
    "register_strategy": "mmtune.strategies.registry",
    "StrategySpec": "mmtune.strategies.spec",
    "format_spec": "mmtune.strategies.spec",
    "parse_spec": "mmtune.strategies.spec",
    "StrategySummary": "mmtune.strategies.summary",
    "save_tuned": "mmtune.strategies.checkpoint",
    "load_tuned": "mmtune.strategies.checkpoint",
    "merge_for_export": "mmtune.strategies.checkpoint",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
