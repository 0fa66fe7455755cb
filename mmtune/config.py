"""YAML configs with dotted ``--set key=value`` overrides, loaded into small typed dataclasses.

Each concept owns its dataclass (``recipes.sft.SFTConfig``, ``bench.grid.BenchConfig`` ...);
this module only knows how to fill one from a YAML file and overrides, rejecting unknown keys
with the list of valid ones.
"""
from __future__ import annotations

import dataclasses
import math
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
        key, sep, raw = pair.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override {pair!r} must look like key=value (e.g. lr=1e-4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(
                f"override {pair!r}: the value is not valid YAML ({_yaml_problem(e)}); quote it or fix the brackets"
            ) from None
        node = out
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {pair!r}: {'.'.join(parts[:i + 1])} was set to a value above, so it has no sub-keys"
                )
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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the config as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({_yaml_problem(e)}); fix the syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's complaint in one line, without the multi-line source excerpt it prints."""
    problem = getattr(e, "problem", None) or str(e)
    context, opened = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and opened:
        problem = f"{problem}, {context} opened on line {opened.line + 1}"
    return " ".join(problem.split())


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
    """``value`` as type ``tp``, or a ConfigError naming the key ``where`` and the type it wants."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            keys = ", ".join(f.name for f in dataclasses.fields(tp))
            raise ConfigError(f"config key {where} must be a mapping with keys from {keys}; got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if tp is float:
        return _number(value, where)
    if tp is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"config key {where} must be an integer, got {value!r}")
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key {where} must be true or false, got {value!r}")
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key {where} must be a single value, got {value!r}; quote it if it is text")
        return value if isinstance(value, str) else str(value)
    if origin in (list, tuple):
        return _list(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where} must be a mapping, e.g. {where}={{name: value}}; got {value!r}")
        _, value_tp = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(value_tp, v, f"{where}.{k}") for k, v in value.items()}
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"config key {where} must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"config key {where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config key {where} must be a finite number, got {value!r}")
    return float(value)


def _list(tp: Any, value: Any, where: str) -> list[Any]:
    """A YAML list, or a comma-separated string (``tags=x,y``, ``seeds=0,1``) split into its items."""
    (item_tp,) = typing.get_args(tp)[:1] or (Any,)
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
        value = items if item_tp is str else [_scalar(v, where) for v in items]
    if isinstance(value, dict):
        raise ConfigError(f"config key {where} must be a list; got one mapping, write it in brackets: [{value}]")
    if not isinstance(value, list):
        raise ConfigError(f"config key {where} must be a list, e.g. {where}=[...]; got {value!r}")
    return [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]


def _scalar(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"config key {where}: item {text!r} is not valid YAML; quote it") from None


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """YAML file (optional) + dotted overrides -> ``cls``; unknown keys are errors."""
    data = load_yaml(path) if path else {}
    data = merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
