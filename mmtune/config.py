"""YAML configs with dotted ``--set key=value`` overrides, loaded into small typed dataclasses.

Each concept owns its dataclass (``recipes.sft.SFTConfig``, ``bench.grid.BenchConfig`` ...);
this module only knows how to fill one from a YAML file and overrides, rejecting unknown keys
with the list of valid ones.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "strategy=top(k=2)"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like key=value (e.g. lr=1e-4)")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"valid keys{' under ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"config key(s) {', '.join(prefix + m for m in missing)} required but not given")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where} must be a mapping")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"config key {where} must be a number, got {value!r}") from None
    if tp is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"config key {where} must be an integer, got {value!r}")
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key {where} must be true or false, got {value!r}")
    if tp is str and not isinstance(value, str):
        return str(value)
    if origin in (list, tuple) and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if origin is list and isinstance(value, list):
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """YAML file (optional) + dotted overrides -> ``cls``; unknown keys are errors."""
    data = load_yaml(path) if path else {}
    data = merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
