"""The one record every reader produces and every consumer (collation, eval, world) takes.

Messages use the Hugging Face chat format so processors' chat templates apply directly:
``{"role": "user" | "assistant" | "system", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}``.
Each ``{"type": "image"}`` part consumes the next entry of ``images`` in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from PIL import Image

ImageRef = Union[str, Path, Image.Image]
ROLES = ("system", "user", "assistant")


@dataclass
class Sample:
    """One multimodal conversation: ``id``, ``images`` (paths or PIL images), ``messages``.

    ``meta`` carries what is not part of the conversation: references for evaluation
    (``answers``, ``answer``, ``box``, ``choices`` ...), the task name, the source file, and
    ``tools`` (JSON schemas the chat template renders through its ``tools=``).
    """

    id: str
    messages: list[dict[str, Any]]
    images: list[ImageRef] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_image_parts(self) -> int:
        return sum(
            1
            for m in self.messages
            for part in content_parts(m)
            if part.get("type") == "image"
        )

    def text_of(self, role: str) -> list[str]:
        """Concatenated text of each message with ``role``, in order."""
        return [
            "".join(p.get("text", "") for p in content_parts(m) if p.get("type") == "text")
            for m in self.messages
            if m["role"] == role
        ]

    def prompt_messages(self) -> list[dict[str, Any]]:
        """The conversation without its final assistant turn (what a model is asked)."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[:-1]
        return list(self.messages)


def content_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content as typed parts (a plain string becomes one text part)."""
    content = message.get("content", [])
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content


def user_turn(text: str, n_images: int = 1) -> dict[str, Any]:
    """A user message with ``n_images`` image parts before the text (LLaVA's convention)."""
    return {
        "role": "user",
        "content": [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}],
    }


def assistant_turn(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def load_image(ref: ImageRef) -> Image.Image:
    """Open an image reference as RGB; paths are opened lazily at collation time."""
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    with Image.open(ref) as im:
        return im.convert("RGB")
