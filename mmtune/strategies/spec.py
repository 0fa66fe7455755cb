"""Strategy specs: the one-line, serializable form of a tuning strategy.

Syntax::

    spec   := part ("+" part)*
    part   := NAME | NAME "(" [arg ("," arg)*] ")"
    arg    := KEY "=" value
    value  := item ("|" item)*        # a "|"-separated list, e.g. groups=llm|projector
    item   := int | float | true | false | bare string

``top(k=2)+projector`` unions two selections; ``lora(r=16, alpha=32, groups=llm|vision)`` targets
two groups. ``|`` is used for lists because ``,`` separates arguments and ``+`` separates parts,
so no quoting or brackets are ever needed. ``str(spec)`` is canonical: arguments in the order
written, ``, `` between them, no parentheses when there are none; parsing it gives it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Value = Any  # int | float | bool | str | tuple[int | float | bool | str, ...]

_PART = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StrategySpec:
    """One strategy in a spec: its registered name and the arguments written for it."""

    name: str
    kwargs: dict[str, Value] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        args = ", ".join(f"{k}={_format_value(v)}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


def format_spec(parts: list[StrategySpec]) -> str:
    """The canonical text of a parsed spec (``parse_spec(format_spec(p)) == p``)."""
    return "+".join(str(p) for p in parts)


def parse_spec(text: str) -> list[StrategySpec]:
    """Parse ``name(k=v, ...)+name...`` into specs; syntax only (see ``registry.resolve`` for names)."""
    if not text or not text.strip():
        raise ValueError("empty strategy spec; write e.g. 'full', 'top(k=4)' or 'lora(r=16)'")
    return [_parse_part(p, text) for p in _split_top(text, "+", text)]


def _parse_part(part: str, whole: str) -> StrategySpec:
    m = _PART.match(part)
    if not m:
        raise ValueError(
            f"strategy spec {whole!r}: cannot parse {part.strip()!r}; write name or name(key=value, ...)"
        )
    name, body = m.group(1), m.group(2)
    kwargs: dict[str, Value] = {}
    if body is not None and body.strip():
        for arg in _split_top(body, ",", whole):
            key, sep, raw = arg.partition("=")
            key = key.strip()
            if not sep or not _KEY.match(key) or not raw.strip():
                raise ValueError(
                    f"strategy spec {whole!r}: argument {arg.strip()!r} of {name} is not key=value"
                )
            if key in kwargs:
                raise ValueError(f"strategy spec {whole!r}: argument {key!r} of {name} given twice")
            kwargs[key] = _parse_value(raw)
    return StrategySpec(name, kwargs)


def _split_top(text: str, sep: str, whole: str) -> list[str]:
    """Split on ``sep`` outside parentheses, so ``+`` and ``,`` inside an argument list are kept."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"strategy spec {whole!r}: unbalanced ')'")
        elif ch == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"strategy spec {whole!r}: unbalanced '('")
    out.append(text[start:])
    if any(not p.strip() for p in out):
        raise ValueError(f"strategy spec {whole!r}: empty part around {sep!r}")
    return out


def _parse_value(raw: str) -> Value:
    items = [_parse_item(s.strip()) for s in raw.split("|")]
    return items[0] if len(items) == 1 else tuple(items)


def _parse_item(s: str) -> int | float | bool | str:
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _format_value(v: Value) -> str:
    if isinstance(v, (tuple, list)):
        return "|".join(_format_value(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)
