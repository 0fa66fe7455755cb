"""The tool registry: a vision tool is a typed Python function whose signature and docstring become
its description in the prompt (a JSON schema for chat templates that take ``tools=``, one line of
surface calls for the call DSL).

A tool takes the image first, then arguments of the types in ``ARGUMENT_TYPES``: ``str`` (an
object phrase, e.g. "red circle") or ``Box`` (``[x1, y1, x2, y2]`` in [0, 1] image coordinates,
the world's RefCOCO format). It returns an int, a string, a list of boxes or an image (a crop the
model looks at next). Register one with ``@tool`` or a YAML entry ``function: package.module:name``
(imported, never evaluated from a string).
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, get_type_hints

import yaml
from PIL import Image

from mmtune.registry import Registry

Box = tuple[float, float, float, float]
# argument type -> (JSON schema, the word naming it in the DSL's tool line: both world vocabulary)
ARGUMENT_TYPES: dict[Any, tuple[dict[str, Any], str]] = {
    str: ({"type": "string"}, "object"),
    Box: ({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}, "box"),
}
_FUNCTION_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


class ToolError(ValueError):
    """A call a tool cannot answer (unknown object word, empty box); fed back to the model."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Any
    description: str


@dataclass(frozen=True)
class ToolResult:
    """What a call gave: ``text`` goes back to the model; ``image`` (a crop) is shown to it too."""

    text: str
    image: Image.Image | None = None


@dataclass(frozen=True)
class Tool:
    """A registered tool: its call name, the DSL ``alias`` (a word the model's tokenizer knows),
    its parameters and the description read from its docstring."""

    name: str
    function: Callable[..., Any]
    parameters: tuple[Parameter, ...]
    description: str
    alias: str

    def schema(self) -> dict[str, Any]:
        """The tool as a chat template's ``tools=`` entry (the JSON-schema function format)."""
        properties = {p.name: {**ARGUMENT_TYPES[p.type][0], "description": p.description} for p in self.parameters}
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": properties, "required": list(properties)}}}

    def surface(self) -> str:
        """The tool in the DSL's tool line, e.g. ``Count ( object )``."""
        return f"{self.alias} ( {' , '.join(ARGUMENT_TYPES[p.type][1] for p in self.parameters)} )"

    def run(self, image: Image.Image, arguments: dict[str, Any]) -> ToolResult:
        return to_result(self.function(image, **arguments))


def format_box(box: Box) -> str:
    """``[0.12, 0.30, 0.34, 0.52]``: two decimals, the world RefCOCO answer's exact text."""
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def to_result(value: Any) -> ToolResult:
    """A tool's return value as the text fed back: a number, a word, boxes joined by " ; ", or
    "no" when nothing was found."""
    if isinstance(value, Image.Image):
        return ToolResult("image", value)
    if isinstance(value, bool) or value is None:
        return ToolResult("yes" if value else "no")
    if isinstance(value, int):
        return ToolResult(str(value))
    if isinstance(value, str):
        return ToolResult(value or "no")
    if isinstance(value, (list, tuple)):
        return ToolResult(" ; ".join(format_box(b) for b in value) or "no")
    raise TypeError(f"a tool returned {type(value).__name__}; return an int, str, list of boxes or an image")


def _parameter_docs(doc: str) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section."""
    found, inside = {}, False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:"):
            inside = True
        elif inside and (m := re.match(r"^([A-Za-z_]\w*)\s*(\([^)]*\))?:\s*(.+)$", stripped)):
            found[m.group(1)] = m.group(3)
        elif inside and stripped.endswith(":"):
            inside = False
    return found


def describe_function(function: Callable[..., Any], name: str | None = None, alias: str | None = None) -> Tool:
    """A ``Tool`` from a function's signature and docstring; refuses what the prompt cannot describe."""
    label = f"tool {getattr(function, '__qualname__', function)!r}"
    if not inspect.isfunction(function):
        raise TypeError(f"{label}: register a plain Python function")
    name = name or function.__name__
    alias = alias or name
    for what, value in (("name", name), ("alias", alias)):
        if not _NAME.match(value):
            raise ValueError(f"{label}: {what} {value!r} must be an identifier of at most 32 characters")
    doc = inspect.getdoc(function) or ""
    if not doc:
        raise ValueError(f"{label}: write a docstring; its first paragraph is the description in the prompt")
    hints = get_type_hints(function)
    params = list(inspect.signature(function).parameters.values())
    if not params or hints.get(params[0].name) is not Image.Image:
        raise ValueError(f"{label}: the first parameter must be the image, annotated PIL.Image.Image")
    docs = _parameter_docs(doc)
    parameters = []
    for p in params[1:]:
        kind = hints.get(p.name)
        if kind not in ARGUMENT_TYPES:
            raise ValueError(f"{label}: parameter {p.name!r} must be annotated str or Box, not {kind}")
        parameters.append(Parameter(p.name, kind, docs.get(p.name, "")))
    return Tool(name, function, tuple(parameters), doc.split("\n\n")[0].replace("\n", " "), alias)


TOOLS: Registry[Tool] = Registry("tool", builtins=("mmtune.tools.builtins",))


def register_tool(function: Callable[..., Any], *, name: str | None = None, alias: str | None = None) -> Tool:
    """Register ``function`` as a tool; its call name and alias must both be new."""
    entry = describe_function(function, name, alias)
    if entry.alias != entry.name and any(entry.alias in (t.name, t.alias) for t in TOOLS.values()):
        raise ValueError(f"tool alias {entry.alias!r} is already taken; pick another")
    return TOOLS.register(entry.name, entry)


def tool(name: str | None = None, *, alias: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@tool()`` or ``@tool("detect", alias="region")`` registers the function as is."""
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        register_tool(function, name=name, alias=alias)
        return function
    return decorate


def find_tool(called: str) -> Tool:
    """The tool a call names, by name or alias; the error lists what can be called."""
    for entry in TOOLS.values():
        if called in (entry.name, entry.alias):
            return entry
    known = sorted({n for t in TOOLS.values() for n in (t.name, t.alias)})
    raise ToolError(f"unknown tool {called!r}; call one of {', '.join(known)}")


def load_tool_file(path: str | Path) -> list[Tool]:
    """Register the tools a YAML file lists: ``tools: [{function: pkg.module:fn, name: ..., alias: ...}]``.

    ``function`` is imported by module path and attribute name only: no string is evaluated.
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: write a list under `tools:`, each entry with `function: package.module:function`")
    added = []
    for i, entry in enumerate(entries):
        where = f"{path}: tools[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"function", "name", "alias"}:
            raise ValueError(f"{where}: an entry has the keys function, name (optional), alias (optional)")
        spec = str(entry.get("function", ""))
        if not _FUNCTION_SPEC.match(spec):
            raise ValueError(f"{where}: function {spec!r} must read package.module:function")
        module, _, attribute = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"{where}: cannot import {spec!r} ({e}); is its package installed?") from e
        try:
            added.append(register_tool(function, name=entry.get("name"), alias=entry.get("alias")))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e
    return added
