"""The tool loop: scripted models walk each path (call, error, answer, limits) in both modes, and a
tiny random world model that writes garbage ends every question within the limits."""
import json
import random

import pytest

from mmtune.data.sample import Sample, user_turn
from mmtune.tools.calls import DSLFormat, JSONFormat
from mmtune.tools.loop import FAILURES, Limits, ToolLoop, summarize
from mmtune.world.scenes import render, sample_scene


def _question(i: int = 0, text: str = "How many circles are there?") -> Sample:
    scene = sample_scene(random.Random(i), n_objects=(2, 6), word_prob=0.0, shapes=["circle", "circle"])
    return Sample(f"q{i}", [user_turn(text)], [render(scene)], {"circles": len(scene.of_kind("circle"))})


def scripted(*replies: str):
    """A model that answers the n-th step of every conversation with ``replies[n]`` (the last repeats)
    and records what it was shown."""
    seen = []

    def generate(conversations, max_new_tokens):
        seen.append([c.messages[:] for c in conversations])
        return [replies[min((len(c.messages) - 1) // 2, len(replies) - 1)] for c in conversations]

    generate.seen = seen
    return generate


def test_decision_mode_calls_reads_the_result_and_answers(tmp_path):
    q = _question()
    gen = scripted("Count ( circles )", "2")
    trace = tmp_path / "trace.jsonl"
    (episode,) = ToolLoop(gen, DSLFormat()).run([q], trace)
    assert episode.answer == "2" and episode.failure is None and episode.calls == 1
    assert episode.results == [str(q.meta["circles"])]
    # the model saw the tool line with the question, then the count as a user turn
    second = gen.seen[1][0]
    assert "Count ( object )" in second[0]["content"][-1]["text"]
    assert second[1] == {"role": "assistant", "content": [{"type": "text", "text": "Count ( circles )"}]}
    assert second[2]["role"] == "user" and second[2]["content"][-1]["text"] == str(q.meta["circles"])
    steps = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1]
    assert steps[0]["call"] == ["Count ( circles )"] and steps[0]["result"] == [str(q.meta["circles"])]
    assert steps[1]["answer"] == "2" and "prompt" in steps[1] and steps[1]["output"] == "2"


def test_a_bad_call_is_fed_back_as_an_error_and_counted():
    gen = scripted("Count ( __import__('os') )", "Count ( circle )", "3")
    (episode,) = ToolLoop(gen, DSLFormat()).run([_question()])
    assert episode.answer == "3" and episode.invalid == 1 and episode.calls == 1
    error_turn = gen.seen[1][0][2]
    assert error_turn["content"][-1]["text"].startswith("? region ( object )")
    assert episode.steps[0]["error"] and "letters and spaces only" in episode.steps[0]["error"][0]


def test_a_looping_model_stops_at_max_calls_with_a_named_failure():
    (episode,) = ToolLoop(scripted("Count ( circle )"), DSLFormat(), limits=Limits(max_calls=2)).run([_question()])
    assert episode.failure == "call_limit" and episode.answer is None and episode.calls == 2


def test_the_token_budget_ends_a_question():
    limits = Limits(max_calls=10, max_total_tokens=8)
    (episode,) = ToolLoop(scripted("Count ( circle )"), DSLFormat(), limits=limits).run([_question()])
    assert episode.failure == "token_limit" and episode.tokens >= 8 and episode.calls == 2


def test_an_empty_answer_is_a_named_failure():
    (episode,) = ToolLoop(scripted("   "), DSLFormat()).run([_question()])
    assert episode.failure == "empty_answer"


def test_controller_mode_runs_the_whole_plan_then_takes_the_answer():
    q = _question()
    gen = scripted("Count ( circle )\nregion ( circle )\nZoom ( circle )", "2")
    (episode,) = ToolLoop(gen, DSLFormat(), mode="controller").run([q])
    assert episode.answer == "2" and episode.calls == 2 and episode.invalid == 1
    results = gen.seen[1][0][2]["content"][-1]["text"].split("\n")
    assert results[0] == str(q.meta["circles"]) and results[1].startswith("[") and results[2].startswith("?")


def test_controller_mode_refuses_a_second_plan():
    (episode,) = ToolLoop(scripted("Count ( circle )"), DSLFormat(), mode="controller").run([_question()])
    assert episode.failure == "call_after_plan" and episode.calls == 1


def test_the_rules_refiner_answers_from_the_last_result():
    q = _question()
    (episode,) = ToolLoop(scripted("region ( circle )"), DSLFormat(), mode="controller", refiner="rules").run([q])
    first_box = episode.results[0].split(" ; ")[0]
    assert episode.answer == first_box and first_box.startswith("[") and episode.results[0].count("[") == q.meta["circles"]


def test_a_crop_shows_the_model_a_new_image():
    gen = scripted("picture ( [0.00, 0.00, 0.50, 0.50] )", "circle")
    (episode,) = ToolLoop(gen, DSLFormat()).run([_question()])
    conversation = episode.conversation
    assert len(conversation.images) == 2 and conversation.num_image_parts == 2
    assert conversation.images[1].size == conversation.images[0].size


def test_a_failing_user_tool_is_an_error_turn_not_a_crash(monkeypatch):
    from mmtune.tools.registry import TOOLS

    def broken(image, name):
        raise RuntimeError("detector weights missing")

    entry = TOOLS["count"]
    monkeypatch.setitem(TOOLS, "count", type(entry)(entry.name, broken, entry.parameters, entry.description, entry.alias))
    (episode,) = ToolLoop(scripted("Count ( circle )", "1"), DSLFormat()).run([_question()])
    assert episode.answer == "1" and episode.invalid == 1
    assert "tool count failed: RuntimeError: detector weights missing" in episode.steps[0]["error"][0]


def test_json_format_puts_the_tool_schemas_in_a_system_turn_and_results_in_tool_turns():
    gen = scripted('<tool_call>{"name": "count", "arguments": {"name": "circle"}}</tool_call>', "2")
    (episode,) = ToolLoop(gen, JSONFormat()).run([_question()])
    system, _, call, result = gen.seen[1][0]
    assert system["role"] == "system" and '"name": "detect"' in system["content"][0]["text"]
    assert call["role"] == "assistant" and result["role"] == "tool"
    assert episode.answer == "2" and episode.calls == 1


def test_summary_counts_answers_failures_calls_and_invalid_share():
    gen = scripted("Count ( circle )", "Count ( nothing here )", "Count ( star )")
    episodes = ToolLoop(gen, DSLFormat(), limits=Limits(max_calls=3)).run([_question(i) for i in range(4)])
    s = summarize(episodes)
    assert s["questions"] == 4 and s["answers"] == 0 and s["failures"] == {"call_limit": 4}
    assert s["calls"] == 8 and s["invalid_calls"] == 4 and s["invalid_share"] == pytest.approx(4 / 12, abs=1e-4)
    assert s["calls_per_answer"] is None and s["seconds_per_question"] >= 0


@pytest.mark.parametrize("mode", ["decision", "controller"])
def test_a_tiny_random_world_model_writing_garbage_ends_within_its_limits(mode):
    """Random weights, sampled hot: whatever it writes, every question ends with an answer or a
    named failure, within max_calls calls and the token budget plus one step. Half the outputs are
    opened as a call (``Count (`` + the garbage), so garbage also reaches the parser and the limits."""
    import torch

    from mmtune.eval.runner import generate_answers
    from mmtune.world.model import build_base_model
    from mmtune.world.tokenizer import world_processor

    torch.manual_seed(0)
    model, processor = build_base_model("tiny", seed=0).eval(), world_processor()
    limits = Limits(max_calls=2, max_new_tokens=12, max_total_tokens=30)

    def generate(conversations, n):
        out = generate_answers(model, processor, conversations, max_new_tokens=n, do_sample=True, temperature=2.0)
        return [f"Count ( {text}" if int(c.id[1:]) % 2 == 0 else text for c, text in zip(conversations, out)]

    count = lambda t: len(processor.tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    episodes = ToolLoop(generate, DSLFormat(), mode=mode, limits=limits, count_tokens=count).run(
        [_question(i) for i in range(6)])
    for e in episodes:
        assert (e.answer is None) != (e.failure is None)
        assert e.failure is None or e.failure in FAILURES
        assert e.calls + e.invalid <= limits.max_calls
        assert len(e.steps) <= limits.max_calls + 1
        assert e.tokens <= limits.max_total_tokens + limits.max_new_tokens
    called = [e for e in episodes if int(e.conversation.id[1:]) % 2 == 0]
    assert all(e.failure in ("call_limit", "call_after_plan", "token_limit") for e in called)
    assert sum(e.invalid for e in called) >= 1  # the garbage was refused by the parser, not run


def test_limits_and_modes_are_checked():
    with pytest.raises(ValueError, match="max_calls must be at least 1"):
        Limits(max_calls=0)
    with pytest.raises(ValueError, match="unknown tool loop mode 'auto'"):
        ToolLoop(scripted("1"), DSLFormat(), mode="auto")


def test_a_template_that_renders_tools_gets_the_schemas_through_tools():
    # A Hermes / Qwen2.5-style template reads ``tools``: the call format is json, the schemas travel as the
    # question's meta["tools"] (no system turn of mmtune's), and the prompt the model sees is the template's.
    from mmtune.data.collate import GenerationCollator, render
    from mmtune.tools.calls import call_format_for
    from mmtune.world.tokenizer import world_processor

    processor = world_processor()
    processor.chat_template = (
        "{% if tools %}<|im_start|>system\n# Tools\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>"
        "<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{% for p in m.content %}"
        "{% if p.type == 'image' %}<image>{% else %}{{ p.text }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fmt = call_format_for(processor)
    assert isinstance(fmt, JSONFormat) and fmt.via_template
    gen = scripted('<tool_call>{"name": "count", "arguments": {"name": "circle"}}</tool_call>', "2")
    (episode,) = ToolLoop(gen, fmt).run([_question()])
    assert episode.answer == "2" and all(m["role"] != "system" for m in episode.conversation.messages)
    assert episode.conversation.meta["tools"] == fmt.tools()
    prompt = GenerationCollator(processor)([episode.conversation]).prompts[0]
    assert prompt.startswith("<|im_start|>system\n# Tools\n<tools>") and '"name": "detect"' in prompt
    assert prompt == render(processor, episode.conversation.prompt_messages(), add_generation_prompt=True,
                            tools=fmt.tools())
    # a template without tools keeps mmtune's system turn
    assert not call_format_for(world_processor(), "json").via_template
