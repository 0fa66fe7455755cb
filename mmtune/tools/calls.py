"""Tool calls as a model writes them, in two formats, read by a parser that never executes them.

- ``dsl``: one call per line, ``Alias ( argument , ... )``, where an argument is an object phrase
  (letters and spaces: ``red circle``) or a box (``[0.12, 0.30, 0.34, 0.52]``). Every symbol is a
  word of the world model's vocabulary, so a word-level model can write and read it; tool results
  come back as a user turn, an invalid call as ``? `` followed by the tool line.
- ``json``: the Hermes / Qwen2.5 chat-template convention, ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>``, decoded by ``json.loads`` (data only) after a size check; results come back
  as a ``tool`` turn, an invalid call as its error message.

Both validate the tool name, the number and type of arguments and their size; a bad call becomes
a ``CallError`` whose message says what to write instead.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from mmtune.data.sample import Sample
from mmtune.tools.registry import TOOLS, Box, Tool, ToolError, find_tool, format_box

MAX_CALL_CHARS = 200  # one call, as written
MAX_PHRASE_CHARS = 48
MAX_PHRASE_WORDS = 6
_PHRASE = re.compile(r"^[A-Za-z]+( [A-Za-z]+)*$")
_NUMBER = re.compile(r"^\d{1,3}(\.\d{1,4})?$")
_DSL_START = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(")


class CallError(ToolError):
    """A call the parser refused: unknown tool, wrong arguments, too long, malformed."""


@dataclass(frozen=True)
class Call:
    """A validated call: the tool and its typed arguments."""

    tool: Tool
    arguments: dict[str, Any]


def check_box(values: list[Any], where: str) -> Box:
    """Four numbers in [0, 1] with x1 < x2 and y1 < y2."""
    if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise CallError(f"{where}: a box is four numbers [x1, y1, x2, y2]")
    if not all(0.0 <= v <= 1.0 for v in values) or values[0] >= values[2] or values[1] >= values[3]:
        raise CallError(f"{where}: box {values} must lie in [0, 1] with x1 < x2 and y1 < y2")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def check_phrase(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_PHRASE_CHARS or len(value.split()) > MAX_PHRASE_WORDS:
        raise CallError(f"{where}: an object phrase is at most {MAX_PHRASE_WORDS} words, e.g. red circle")
    phrase = " ".join(value.split())
    if not _PHRASE.match(phrase):
        raise CallError(f"{where}: an object phrase has letters and spaces only, e.g. red circle")
    return phrase


def _parse_or_error(parse_one: Callable[[str], Call], text: str) -> Call | CallError:
    try:
        return parse_one(text)
    except ToolError as e:  # an unknown tool name is refused like any other bad call
        return e if isinstance(e, CallError) else CallError(str(e))


def _bind(tool: Tool, values: list[Any]) -> Call:
    """Positional values -> a ``Call`` with each argument checked against its declared type."""
    if len(values) != len(tool.parameters):
        raise CallError(f"{tool.alias} takes {len(tool.parameters)} argument(s): {tool.surface()}")
    arguments = {}
    for p, v in zip(tool.parameters, values):
        where = f"{tool.alias} argument {p.name}"
        arguments[p.name] = check_phrase(v, where) if p.type is str else check_box(v, where)
    return Call(tool, arguments)


class DSLFormat:
    """``Alias ( argument , ... )``, one call per line; see the module docstring."""

    name = "dsl"

    def tool_line(self) -> str:
        """What the prompt says the tools are: every tool's surface call, e.g. ``Count ( object )``."""
        return " ; ".join(t.surface() for t in TOOLS.values())

    def is_call(self, text: str) -> bool:
        """Whether the output is an attempt at a call (an answer never opens with ``word (``)."""
        return bool(_DSL_START.match(text))

    def parse(self, text: str) -> list[Call | CallError]:
        """Each non-empty line as a call or the error that refuses it."""
        return [_parse_or_error(self.parse_one, line) for line in text.splitlines() if line.strip()]

    def parse_one(self, text: str) -> Call:
        if len(text) > MAX_CALL_CHARS:
            raise CallError(f"a call is at most {MAX_CALL_CHARS} characters; this one has {len(text)}")
        m = re.match(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", text)
        if not m:
            raise CallError(f"write a call as Alias ( argument ), e.g. Count ( circle ); got {text.strip()!r}")
        tool = find_tool(m.group(1))
        return _bind(tool, _dsl_arguments(m.group(2), tool.alias))

    def render_call(self, call: Call) -> str:
        args = [format_box(v) if p.type is not str else v for p, v in zip(call.tool.parameters, call.arguments.values())]
        return f"{call.tool.alias} ( {' , '.join(args)} )"

    def result_turn(self, text: str, n_images: int = 0) -> dict[str, Any]:
        return {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}

    def error_text(self, error: Exception) -> str:
        return f"? {self.tool_line()}"

    def question(self, text: str) -> str:
        return f"{text}\n{self.tool_line()}"


def _dsl_arguments(inner: str, alias: str) -> list[Any]:
    """``red circle`` / ``[0.1, 0.2, 0.3, 0.4]`` / several joined by commas outside brackets."""
    values: list[Any] = []
    rest = inner.strip()
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0 or "[" in rest[1:end]:
                raise CallError(f"{alias}: a box is [x1, y1, x2, y2], without nested brackets")
            numbers = [n.strip() for n in rest[1:end].split(",")]
            if not all(_NUMBER.match(n) for n in numbers):
                raise CallError(f"{alias}: a box holds four decimal numbers, e.g. [0.12, 0.30, 0.34, 0.52]")
            values.append([float(n) for n in numbers])
            rest = rest[end + 1:].strip()
        else:
            cut = rest.find(",")
            values.append(rest if cut < 0 else rest[:cut].strip())
            rest = "" if cut < 0 else rest[cut:]
        if rest.startswith(","):
            rest = rest[1:].strip()
            if not rest:
                raise CallError(f"{alias}: an argument is missing after the last comma")
        elif rest:
            raise CallError(f"{alias}: separate arguments with commas")
    return values


class JSONFormat:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes / Qwen2.5 templates)."""

    name = "json"
    _BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)

    def __init__(self, via_template: bool = False) -> None:
        # True where the chat template renders ``tools=``: the schemas then travel as a sample's
        # ``meta["tools"]`` and the template writes them in its own format; else as a system turn
        self.via_template = via_template

    def tools(self) -> list[dict[str, Any]]:
        return [t.schema() for t in TOOLS.values()]

    def describe(self, conversation: Sample) -> None:
        """Give ``conversation`` the tool descriptions: to the chat template, else as a system turn."""
        if self.via_template:
            conversation.meta["tools"] = self.tools()
        else:
            conversation.messages.insert(0, self.system_turn())

    def system_turn(self) -> dict[str, Any]:
        """The tool schemas and the call syntax as a system turn, the text Hermes-style templates
        render from ``tools=``, for templates that do not."""
        text = (f"You may call these tools:\n<tools>\n{json.dumps(self.tools())}\n</tools>\nCall one as "
                '<tool_call>{"name": <tool>, "arguments": {<parameter>: <value>}}</tool_call>, or answer.')
        return {"role": "system", "content": [{"type": "text", "text": text}]}

    def is_call(self, text: str) -> bool:
        return "<tool_call>" in text

    def parse(self, text: str) -> list[Call | CallError]:
        return [_parse_or_error(self.parse_one, m.group(1)) for m in self._BLOCK.finditer(text)]

    def parse_one(self, text: str) -> Call:
        if len(text) > MAX_CALL_CHARS * 4:
            raise CallError(f"a call is at most {MAX_CALL_CHARS * 4} characters; this one has {len(text)}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CallError(f"a tool call is one JSON object {{\"name\": ..., \"arguments\": {{...}}}}: {e.msg}") from e
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("arguments", {}), dict):
            raise CallError('a tool call is {"name": "<tool>", "arguments": {"<parameter>": <value>}}')
        tool = find_tool(data["name"])
        arguments = data.get("arguments", {})
        unknown = set(arguments) - {p.name for p in tool.parameters}
        if unknown:
            raise CallError(f"{tool.name} has no parameter {sorted(unknown)[0]!r}; it takes {[p.name for p in tool.parameters]}")
        missing = [p.name for p in tool.parameters if p.name not in arguments]
        if missing:
            raise CallError(f"{tool.name}: argument {missing[0]!r} is missing")
        return _bind(tool, [arguments[p.name] for p in tool.parameters])

    def render_call(self, call: Call) -> str:
        arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in call.arguments.items()}
        return f"<tool_call>\n{json.dumps({'name': call.tool.name, 'arguments': arguments})}\n</tool_call>"

    def result_turn(self, text: str, n_images: int = 0) -> dict[str, Any]:
        return {"role": "tool", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}

    def error_text(self, error: Exception) -> str:
        return f"error: {error}"

    def question(self, text: str) -> str:
        return text


CALL_FORMATS = {"dsl": DSLFormat, "json": JSONFormat}


def call_format_for(processor: Any, name: str = "auto") -> DSLFormat | JSONFormat:
    """``json`` where the processor's chat template renders ``tools``, else the DSL; or by name."""
    renders_tools = template_renders_tools(processor)
    if name == "auto":
        name = "json" if renders_tools else "dsl"
    if name not in CALL_FORMATS:
        raise ValueError(f"unknown tool-call format {name!r}; use auto, {', '.join(CALL_FORMATS)}")
    return JSONFormat(via_template=renders_tools) if name == "json" else CALL_FORMATS[name]()


def template_renders_tools(processor: Any) -> bool:
    """Whether the processor's (or its tokenizer's) chat template reads ``tools``."""
    templates = [getattr(processor, "chat_template", None),
                 getattr(getattr(processor, "tokenizer", None), "chat_template", None)]
    return any("tools" in str(t) for t in templates if t)
