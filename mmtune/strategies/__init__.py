"""Tuning strategies: selective, additive and reparameterization, from a one-line spec."""

from mmtune.strategies.apply import apply_strategy
from mmtune.strategies.optim import optimizer_param_groups
from mmtune.strategies.registry import StrategyInfo, list_strategies, register_strategy
from mmtune.strategies.spec import StrategySpec, format_spec, parse_spec
from mmtune.strategies.summary import StrategySummary

__all__ = [
    "StrategyInfo",
    "StrategySpec",
    "StrategySummary",
    "apply_strategy",
    "format_spec",
    "list_strategies",
    "optimizer_param_groups",
    "parse_spec",
    "register_strategy",
]
