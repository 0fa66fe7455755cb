"""Tool-use training data from the world: for each question the calls that answer it, run on the
image's pixels, and the answer that follows from their results, as multi-turn SFT samples
(user question + tool line, assistant call, tool result as a user turn, assistant answer).

A planner reads a world task's question and writes its calls: counting asks ``Count ( star )``,
grounding asks ``region ( red circle )``. The answer is built from what the tools returned, never
from the scene; a question whose tool answer differs from the reference is left out (counted).
"""
from __future__ import annotations

import re
from typing import Callable

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.tools.calls import Call, DSLFormat, JSONFormat
from mmtune.tools.loop import rule_refine
from mmtune.tools.registry import find_tool
from mmtune.world.language import PLURALS
from mmtune.world.tasks import get_world_task

_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}


def plan_counting(question: str) -> list[Call]:
    """``How many stars are there?`` / ``Count the stars in the image.`` -> count(star)."""
    m = re.search(r"(?:How many|Count the) ([a-z]+)", question)
    if not m or m.group(1) not in _SINGULAR:
        raise ValueError(f"counting question {question!r}: no shape plural found")
    return [Call(find_tool("count"), {"name": _SINGULAR[m.group(1)]})]


def plan_grounding(question: str) -> list[Call]:
    """``... this sentence describes: the red circle.`` -> detect(red circle)."""
    m = re.search(r"describes: the ([a-z ]+)\.", question)
    if not m:
        raise ValueError(f"grounding question {question!r}: no object phrase found")
    return [Call(find_tool("detect"), {"name": m.group(1)})]


PLANNERS: dict[str, Callable[[str], list[Call]]] = {"iconqa": plan_counting, "refcoco": plan_grounding}


def tool_use_conversation(sample: Sample, call_format: DSLFormat | JSONFormat | None = None) -> Sample | None:
    """One world question as a tool-use conversation: its planned calls run on the image, their results,
    and the answer that follows from them; None when that answer is not the reference."""
    task = sample.meta.get("task")
    if task not in PLANNERS:
        raise ValueError(f"sample {sample.id!r}: no tool planner for world task {task!r}; tool-use data exists for "
                         f"{', '.join(PLANNERS)}")
    fmt = call_format or DSLFormat()
    question, reference = sample.text_of("user")[0], sample.meta["answer"]
    calls = PLANNERS[task](question)
    image = sample.images[0]
    results = [c.tool.run(image, c.arguments).text for c in calls]
    answer = rule_refine(results)
    if answer != reference:
        return None
    messages = [user_turn(fmt.question(question))]
    for call, result in zip(calls, results):
        messages += [assistant_turn(fmt.render_call(call)), fmt.result_turn(result)]
    messages.append(assistant_turn(answer))
    traced = Sample(f"{sample.id}-tools", messages, [image], {**sample.meta, "tool_calls": len(calls)})
    if isinstance(fmt, JSONFormat):
        fmt.describe(traced)  # trained with the tool descriptions the loop will show
    return traced


def tool_use_samples(task: str, split: str, n: int, seed: int = 0,
                     call_format: DSLFormat | JSONFormat | None = None) -> tuple[list[Sample], int]:
    """``n`` questions of a world task as tool-use conversations, and how many were left out
    because the tools' answer differed from the reference."""
    if task not in PLANNERS:
        raise ValueError(f"no tool planner for world task {task!r}; tool-use data exists for {', '.join(PLANNERS)}")
    made = [tool_use_conversation(s, call_format) for s in get_world_task(task).samples(split, n, seed)]
    out = [s for s in made if s is not None]
    return out, len(made) - len(out)
