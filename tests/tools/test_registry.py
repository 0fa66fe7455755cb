"""Registering tools: signatures and docstrings become descriptions; a decorator or a YAML entry
adds a user's function; nothing is evaluated from a string."""
import sys

import pytest
from PIL import Image

from mmtune.tools.registry import TOOLS, Box, describe_function, find_tool, load_tool_file, to_result, tool


def test_builtins_are_registered_with_their_dsl_aliases():
    assert {t.name: t.alias for t in TOOLS.values()}.items() >= {
        "detect": "region", "count": "Count", "read_text": "Read", "crop": "picture", "describe": "Describe"}.items()


def test_signature_and_docstring_become_the_chat_template_schema():
    schema = TOOLS["detect"].schema()
    fn = schema["function"]
    assert schema["type"] == "function" and fn["name"] == "detect"
    assert fn["description"] == "Find every object that fits a phrase and return their boxes, top to bottom."
    assert fn["parameters"]["required"] == ["name"]
    assert fn["parameters"]["properties"]["name"] == {
        "type": "string", "description": 'the object, e.g. "red circle", "stars", "large square"'}
    box = TOOLS["crop"].schema()["function"]["parameters"]["properties"]["box"]
    assert box["type"] == "array" and box["minItems"] == box["maxItems"] == 4
    assert TOOLS["crop"].surface() == "picture ( box )" and TOOLS["count"].surface() == "Count ( object )"


def test_results_become_the_text_fed_back():
    assert to_result(3).text == "3" and to_result("stop").text == "stop" and to_result("").text == "no"
    assert to_result([(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.75, 1.0)]).text == "[0.10, 0.20, 0.30, 0.40] ; [0.50, 0.50, 0.75, 1.00]"
    assert to_result([]).text == "no"
    image = Image.new("RGB", (4, 4))
    assert to_result(image).image is image
    with pytest.raises(TypeError, match="return an int, str, list of boxes or an image"):
        to_result({"a": 1})


def test_the_decorator_registers_a_user_tool():
    @tool("brightness", alias="light")
    def brightness(image: Image.Image, box: Box) -> str:
        """Say whether a region is bright.

        Args:
            box: the region
        """
        return "yes"

    try:
        assert find_tool("light").function is brightness and TOOLS["brightness"].parameters[0].type == Box
    finally:
        dict.pop(TOOLS, "brightness")


@pytest.mark.parametrize(("source", "message"), [
    ("def f(image, name: str) -> int:\n    '''Doc.'''\n    return 1", "first parameter must be the image"),
    ("def f(image: Image.Image, n: int) -> int:\n    '''Doc.'''\n    return 1", "parameter 'n' must be annotated str or Box"),
    ("def f(image: Image.Image, name: str) -> int:\n    return 1", "write a docstring"),
])
def test_a_function_the_prompt_cannot_describe_is_refused(source, message):
    scope = {"Image": Image}
    exec(source, scope)  # builds the test's own fixture functions
    with pytest.raises(ValueError, match=message):
        describe_function(scope["f"])


def test_a_taken_alias_is_refused():
    def g(image: Image.Image, name: str) -> int:
        """Count."""
        return 0

    with pytest.raises(ValueError, match="tool alias 'Count' is already taken"):
        from mmtune.tools.registry import register_tool

        register_tool(g, name="my_count", alias="Count")


def _user_module(tmp_path, monkeypatch):
    (tmp_path / "my_detectors.py").write_text(
        "from PIL import Image\n\n"
        "def dogs(image: Image.Image, name: str) -> int:\n"
        "    '''Count dogs.\n\n    Args:\n        name: breed\n    '''\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_yaml_entry_registers_a_user_tool_by_module_and_name(tmp_path, monkeypatch):
    _user_module(tmp_path, monkeypatch)
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - function: my_detectors:dogs\n    alias: many\n")
    try:
        (added,) = load_tool_file(path)
        assert added.name == "dogs" and find_tool("many").run(Image.new("RGB", (4, 4)), {"name": "pug"}).text == "7"
        assert added.schema()["function"]["parameters"]["properties"]["name"]["description"] == "breed"
    finally:
        dict.pop(TOOLS, "dogs", None)
        sys.modules.pop("my_detectors", None)


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("tools:\n  - function: \"__import__('os').system('x')\"\n", "must read package.module:function"),
    ("tools:\n  - function: os.system\n", "must read package.module:function"),
    ("tools:\n  - function: os:system\n", "register a plain Python function"),
    ("tools:\n  - function: no_such_pkg:fn\n", "cannot import 'no_such_pkg:fn'"),
    ("tools:\n  - function: my_detectors:dogs\n    code: print(1)\n", "has the keys function, name"),
    ("tools: {function: my_detectors:dogs}\n", "write a list under `tools:`"),
])
def test_a_bad_yaml_entry_names_the_file_and_entry(tmp_path, monkeypatch, yaml_text, message):
    _user_module(tmp_path, monkeypatch)
    path = tmp_path / "tools.yaml"
    path.write_text(yaml_text)
    try:
        with pytest.raises(ValueError, match=message) as info:
            load_tool_file(path)
        assert str(path) in str(info.value)
    finally:
        sys.modules.pop("my_detectors", None)
