"""One small name -> item registry for model families, template pools and world tasks.

A dict, so callers keep ``REG[name]``, ``name in REG`` and iteration; ``register`` refuses
duplicates and ``lookup`` names the valid choices when a name is unknown.
"""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, item: T) -> T:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = item
        return item

    def lookup(self, name: str) -> T:
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}")
        return self[name]
