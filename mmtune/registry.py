"""One name -> item registry for every table of mmtune: model families, strategies, anti-forgetting
methods, eval tasks, metrics, data readers, processor layouts, template pools and world tasks.

A dict, so callers keep ``REG[name]``, ``name in REG`` and iteration. ``builtins`` names the modules
whose import registers the built-in entries (``"pkg.*"``: every module of a package, so a new entry
is a new module and nothing else); they are imported on first use, so importing a registry stays
cheap and a module may register into it without an import cycle. ``register``
refuses duplicates and ``lookup`` names the valid choices when a name is unknown.

``config_from_kwargs`` builds an entry's config dataclass (PEFT style: fields with ``help``
metadata, checks in ``__post_init__``) from a spec's arguments, for every registry whose entries
take arguments (strategies, methods).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    def __init__(self, kind: str, builtins: Iterable[str] = ()) -> None:
        super().__init__()
        self.kind = kind
        self._builtins = tuple(builtins)
        self._loaded = not self._builtins

    def load(self) -> None:
        """Import the built-in modules once (their ``register`` calls fill the registry)."""
        if not self._loaded:
            self._loaded = True  # set first: the modules being imported register into this registry
            for module in self._builtins:
                if module.endswith(".*"):
                    package = importlib.import_module(module[:-2])
                    for found in pkgutil.iter_modules(package.__path__):
                        importlib.import_module(f"{package.__name__}.{found.name}")
                else:
                    importlib.import_module(module)

    def register(self, name: str, item: T) -> T:
        if dict.__contains__(self, name):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = item
        return item

    def lookup(self, name: str) -> T:
        self.load()
        if not dict.__contains__(self, name):
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}")
        return dict.__getitem__(self, name)

    # Reading the registry loads the built-ins first, however it is read.
    def __getitem__(self, name: str) -> T:
        self.load()
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        self.load()
        return dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        self.load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load()
        return dict.__len__(self)

    def keys(self):  # type: ignore[override]
        self.load()
        return dict.keys(self)

    def values(self):  # type: ignore[override]
        self.load()
        return dict.values(self)

    def items(self):  # type: ignore[override]
        self.load()
        return dict.items(self)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.load()
        return dict.get(self, name, default)


def arg_help(config_cls: type) -> dict[str, str]:
    """``field -> help`` of a config dataclass, what listings and error messages show."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(config_cls)}


def config_from_kwargs(what: str, config_cls: type, kwargs: dict[str, Any]) -> Any:
    """The validated ``config_cls`` for ``kwargs``; ``what`` (e.g. "strategy 'lora(r=0)'") names the
    spec in errors, which list the valid arguments with their help."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        valid = ", ".join(f"{k} ({h})" if h else k for k, h in arg_help(config_cls).items()) or "none"
        raise ValueError(f"{what}: unknown argument(s) {', '.join(unknown)}; valid: {valid}")
    values = {}
    for key, value in kwargs.items():
        f = fields[key]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        # A single list item parses as a scalar; list-valued fields always hold tuples.
        values[key] = (value,) if isinstance(default, tuple) and not isinstance(value, tuple) else value
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: {e}") from e
