"""Tool-use tuning (data phase): each world counting / grounding question becomes the conversation that
answers it with vision tools (the call, the tool's result read from the pixels, the answer that follows;
``mmtune.tools.traces``), so the model learns to call tools instead of learning the task. A bench row
``lora+tool_use`` is scored on its target through the tool loop and on the seen sets as usual: does
learning to call tools forget less than learning to count?"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmtune.data.sample import Sample
from mmtune.methods.base import register_method
from mmtune.tools.calls import CALL_FORMATS
from mmtune.tools.traces import tool_use_conversation


@dataclass
class ToolUseConfig:
    format: str = field(default="dsl", metadata={"help": f"how calls are written: {', '.join(CALL_FORMATS)}"})

    def __post_init__(self) -> None:
        if self.format not in CALL_FORMATS:
            raise ValueError(f"tool_use: format {self.format!r} is unknown; use one of {', '.join(CALL_FORMATS)}")


@dataclass(frozen=True)
class ToolUse:
    format: str

    def apply(self, samples: Sequence[Sample], seen: Sequence[Sample], seed: int) -> list[Sample]:
        made = [tool_use_conversation(s, CALL_FORMATS[self.format]()) for s in samples]
        kept = [s for s in made if s is not None]  # questions the tools answer wrongly are left out
        if not kept:
            raise ValueError("tool_use: the tools answered none of the training questions; nothing to train on")
        return kept


@register_method("tool_use", "data", "tool-use tuning: questions become tool calls, results and answers "
                 "(not an anti-forgetting method; the row's target is scored through the tool loop)", ToolUseConfig)
def tool_use(config: ToolUseConfig) -> ToolUse:
    return ToolUse(config.format)
