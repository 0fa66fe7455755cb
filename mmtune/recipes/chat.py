"""Talk to a (tuned) checkpoint about an image, turn after turn, with its answers streamed as they are generated.

Each question is rendered with the whole conversation so far through the family's chat template (the
same rendering training and evaluation use) and answered greedily. ``/image PATH`` shows another image:
the next question carries it, beside the earlier ones where the family takes several images per prompt,
else in a new conversation. ``/reset`` starts over with the current image, ``/exit`` ends.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import torch
from transformers import TextStreamer

from mmtune.data.collate import GenerationCollator
from mmtune.data.sample import ImageRef, Sample, assistant_turn, user_turn

HELP = "/image PATH: talk about another image   /reset: start over   /exit: quit"


class _StreamTo(TextStreamer):
    """transformers' token streamer, writing each finished piece of text to ``out`` instead of stdout."""

    def __init__(self, tokenizer: Any, out: TextIO) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.out = out

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.out.write(text + ("\n" if stream_end else ""))
        self.out.flush()


class ChatSession:
    """One conversation with a loaded model: its turns, the images shown so far and the next one to show."""

    def __init__(self, model: Any, processor: Any, *, image: ImageRef | None = None,
                 images_per_prompt: int | None = None, max_new_tokens: int = 128) -> None:
        self.model, self.processor = model, processor
        self.images_per_prompt, self.max_new_tokens = images_per_prompt, max_new_tokens
        self.image: ImageRef | None = None
        self.messages: list[dict[str, Any]] = []
        self.images: list[ImageRef] = []
        self.pending: ImageRef | None = None  # shown with the next question
        if image is not None:
            self.show(image)

    def show(self, image: ImageRef) -> bool:
        """Make ``image`` the one the next question is about; True when that starts a new conversation
        (the family takes no more images in one prompt)."""
        if isinstance(image, (str, Path)) and not Path(image).is_file():
            raise FileNotFoundError(f"image {image} does not exist")
        self.image = image
        full = self.images_per_prompt is not None and len(self.images) >= self.images_per_prompt
        if full:
            self.reset()
        self.pending = image
        return full

    def reset(self) -> None:
        """Forget the conversation; the current image comes with the next question again."""
        self.messages, self.images, self.pending = [], [], self.image

    @torch.no_grad()
    def ask(self, question: str, out: TextIO | None = None) -> str:
        """The model's greedy answer to ``question`` after the conversation so far, streamed to ``out``."""
        shown = [self.pending] if self.pending is not None else []
        messages = [*self.messages, user_turn(question, n_images=len(shown))]
        batch = GenerationCollator(self.processor)([Sample("chat", messages, [*self.images, *shown])])
        inputs = batch.inputs.to(self.model.device)
        self.model.eval()
        streamer = _StreamTo(getattr(self.processor, "tokenizer", self.processor), out) if out is not None else None
        generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, streamer=streamer)
        answer = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
        self.messages = [*messages, assistant_turn(answer)]
        self.images, self.pending = [*self.images, *shown], None
        return answer


def chat_loop(session: ChatSession, lines: Iterable[str], out: TextIO, prompt: str = "") -> int:
    """Answer each line of ``lines`` (or run its command) until ``/exit`` or the end; returns the turns answered."""
    turns = 0
    out.write(prompt)
    out.flush()
    for line in lines:
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            session.reset()
            out.write("(conversation reset)\n")
        elif text.split(maxsplit=1)[:1] == ["/image"]:
            out.write(_show(session, text[len("/image"):].strip()) + "\n")
        elif text.startswith("/"):
            out.write(f"(unknown command {text.split()[0]}; {HELP})\n")
        elif text:
            out.write("assistant: ")
            session.ask(text, out)
            turns += 1
        out.write(prompt)
        out.flush()
    return turns


def _show(session: ChatSession, path: str) -> str:
    """Run ``/image PATH``; what happened, in one line."""
    if not path:
        return "(/image needs a path: /image PATH)"
    try:
        restarted = session.show(path)
    except FileNotFoundError as e:
        return f"({e}; still talking about {session.image})"
    if restarted:
        return f"(now about {path}, in a new conversation: this model takes {session.images_per_prompt} image(s) per prompt)"
    return f"(now about {path})"


def chat(model_dir: str | Path, image: str | None = None, *, max_new_tokens: int = 128, allow_pickle: bool = False,
         lines: Iterable[str] | None = None, out: TextIO | None = None) -> int:
    """Load ``model_dir`` (mmtune or plain transformers checkpoint) and chat on ``lines`` (default stdin)."""
    from mmtune.strategies.checkpoint import load_tuned

    if image is not None and not Path(image).is_file():
        raise FileNotFoundError(f"image {image} does not exist; pass --image an image file")
    loaded = load_tuned(model_dir, allow_pickle=allow_pickle)
    out = out or sys.stdout
    session = ChatSession(loaded.model, loaded.processor, image=image, max_new_tokens=max_new_tokens,
                          images_per_prompt=loaded.groups.family.images_per_prompt)
    interactive = lines is None and sys.stdin.isatty()
    if interactive:
        out.write(f"chatting with {model_dir}" + (f" about {image}" if image else "") + f"; {HELP}\n")
    return chat_loop(session, sys.stdin if lines is None else lines, out, prompt="> " if interactive else "")
