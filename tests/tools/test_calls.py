"""The call parser on valid and hostile strings: it reads data, never runs it, and refuses with a
message that says what to write."""
import builtins

import pytest

from mmtune.tools.calls import MAX_CALL_CHARS, CallError, DSLFormat, JSONFormat, call_format_for
from mmtune.tools.registry import ToolError, find_tool
from mmtune.world.tokenizer import world_processor

DSL, JSON = DSLFormat(), JSONFormat()


@pytest.mark.parametrize(("text", "tool", "arguments"), [
    ("Count ( circle )", "count", {"name": "circle"}),
    ("  Count(red   circle)  ", "count", {"name": "red circle"}),
    ("region ( large blue star )", "detect", {"name": "large blue star"}),
    ("detect ( stars )", "detect", {"name": "stars"}),  # the tool's own name works as well as its alias
    ("Read ( [0.00, 0.75, 1.00, 1.00] )", "read_text", {"box": (0.0, 0.75, 1.0, 1.0)}),
    ("picture ( [0.1, 0.2, 0.3, 0.4] )", "crop", {"box": (0.1, 0.2, 0.3, 0.4)}),
    ("Describe ([0.25,0.25,0.5,0.5])", "describe", {"box": (0.25, 0.25, 0.5, 0.5)}),
])
def test_dsl_reads_valid_calls(text, tool, arguments):
    call = DSL.parse_one(text)
    assert call.tool.name == tool and call.arguments == arguments


@pytest.mark.parametrize(("text", "message"), [
    ("__import__('os').system('rm -rf /')", "unknown tool '__import__'"),
    ("Count ( __import__('os') )", "letters and spaces only"),
    ("Count ( circle ); import os", "write a call as Alias"),
    ("exec ( print )", "unknown tool 'exec'"),
    ("eval ( circle )", "unknown tool 'eval'"),
    ("Count ( " + "circle " * 40 + ")", f"at most {MAX_CALL_CHARS} characters"),
    ("Count ( a b c d e f g h )", "at most 6 words"),
    ("Read ( [[0.1, 0.2, 0.3, 0.4]] )", "without nested brackets"),
    ("Read ( [0.1, [0.2], 0.3, 0.4] )", "without nested brackets"),
    ("Read ( [0.1, 0.2, 0.3] )", "four numbers"),
    ("Read ( [0.5, 0.2, 0.3, 0.4] )", "x1 < x2"),
    ("Read ( [1e9, 0.2, 0.3, 0.4] )", "four decimal numbers"),
    ("Read ( [" + "9" * 150 + ", 0.2, 0.3, 0.4] )", "four decimal numbers"),
    ("Read ( circle )", "letters and spaces only|a box is four numbers"),
    ("Count ( [0.1, 0.2, 0.3, 0.4] )", "object phrase"),
    ("Count ( circle , star )", "takes 1 argument"),
    ("Count ( circle , )", "argument is missing"),
    ("Count ( )", "takes 1 argument"),
    ("Count ( circle", "write a call as Alias"),
])
def test_dsl_refuses_hostile_and_malformed_calls(text, message):
    with pytest.raises(ToolError, match=message):
        DSL.parse_one(text)


def test_the_parser_never_executes_anything(monkeypatch):
    called = []
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, lambda *a, _name=name, **k: called.append(_name))
    hostile = ["__import__('os').system('touch /tmp/pwned')", "Count ( ().__class__.__bases__ )",
               '<tool_call>{"name": "__import__", "arguments": {"name": "os"}}</tool_call>']
    parsed = [item for text in hostile for item in (JSON if "tool_call" in text else DSL).parse(text)]
    monkeypatch.undo()
    assert called == []
    assert len(parsed) == 3 and all(isinstance(item, CallError) for item in parsed)


def test_parse_turns_every_line_into_a_call_or_an_error():
    items = DSL.parse("Count ( circle )\nnonsense here\n\nregion ( red star )")
    assert [type(i).__name__ for i in items] == ["Call", "CallError", "Call"]


def test_is_call_separates_calls_from_answers():
    assert DSL.is_call("Count ( circle )") and DSL.is_call("foo(bar")
    for answer in ("3", "[0.12, 0.30, 0.34, 0.52]", "circle", "yes", "the red circle (left)"):
        assert not DSL.is_call(answer)


@pytest.mark.parametrize("text", [
    '<tool_call>{"name": "count", "arguments": {"name": "circle"}}</tool_call>',
    '<tool_call>\n{"name": "region", "arguments": {"name": "circle"}}\n</tool_call>',
])
def test_json_reads_chat_template_tool_calls(text):
    (call,) = JSON.parse(text)
    assert call.arguments == {"name": "circle"}


@pytest.mark.parametrize(("text", "message"), [
    ('<tool_call>{"name": "count", "arguments": {"name": "circle"</tool_call>', "one JSON object"),
    ('<tool_call>["count"]</tool_call>', '"name": "<tool>"'),
    ('<tool_call>{"name": "os.system", "arguments": {}}</tool_call>', "unknown tool 'os.system'"),
    ('<tool_call>{"name": "count", "arguments": {"name": {"__class__": 1}}}</tool_call>', "object phrase"),
    ('<tool_call>{"name": "count", "arguments": {"cmd": "ls"}}</tool_call>', "no parameter 'cmd'"),
    ('<tool_call>{"name": "count", "arguments": {}}</tool_call>', "argument 'name' is missing"),
    ('<tool_call>{"name": "crop", "arguments": {"box": [0.1, 0.2, 0.3, true]}}</tool_call>', "four numbers"),
    ('<tool_call>{"name": "count", "arguments": {"name": "' + "a" * 5000 + '"}}</tool_call>', "at most 800 characters"),
    ("<tool_call>" + "[" * 100000 + "</tool_call>", "at most 800 characters"),  # no recursion blow-up
])
def test_json_refuses_hostile_and_malformed_calls(text, message):
    (error,) = JSON.parse(text)
    assert isinstance(error, CallError) and __import__("re").search(message, str(error))


@pytest.mark.parametrize("fmt", [DSL, JSON])
def test_a_rendered_call_parses_back_to_itself(fmt):
    for call in (DSL.parse_one("region ( red circle )"), DSL.parse_one("Read ( [0.00, 0.75, 1.00, 1.00] )")):
        assert fmt.parse(fmt.render_call(call)) == [call]


def test_dsl_calls_and_tool_line_are_in_the_world_vocabulary():
    """The world model can only write its own words: every DSL call and the tool line tokenize
    without an unknown token (the tokenizer is not changed for tools)."""
    tokenizer = world_processor().tokenizer
    texts = [DSL.tool_line(), DSL.error_text(CallError("x")), "Count ( circle )", "region ( large red star )",
             DSL.render_call(DSL.parse_one("Describe ( [0.25, 0.25, 0.50, 0.50] )"))]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids) == text


def test_call_format_follows_the_chat_template():
    class Tok:
        chat_template = "{% if tools %}{{ tools | tojson }}{% endif %}"

    assert call_format_for(world_processor()).name == "dsl"
    assert call_format_for(Tok()).name == "json"
    with pytest.raises(ValueError, match="unknown tool-call format 'xml'"):
        call_format_for(Tok(), "xml")


def test_unknown_tool_error_lists_the_callable_names():
    with pytest.raises(ToolError, match="call one of .*Count.*count.*region"):
        find_tool("Zoom")
