"""mmtune chat: questions piped into the command on a tiny world checkpoint (random weights) are answered turn after
turn through the family's chat template, streamed; /image, /reset and /exit act as documented."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmtune.data.collate import render
from mmtune.recipes.chat import ChatSession
from mmtune.strategies.checkpoint import load_tuned

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from mmtune.world.model import build_base_model
    from mmtune.world.tokenizer import world_processor

    root = tmp_path_factory.mktemp("chat")
    build_base_model("tiny", seed=0).save_pretrained(root / "model")
    world_processor().save_pretrained(root / "model")
    for colour in ("red", "blue"):
        Image.new("RGB", (32, 32), colour).save(root / f"{colour}.png")
    return root


def test_piped_session_streams_each_answer_and_follows_the_commands(world):
    red, blue = str(world / "red.png"), str(world / "blue.png")
    lines = ["what colour is the circle?", "is there a star?", f"/image {blue}", "what colour is the circle?",
             "/image nope.png", "/reset", "how many objects are there?", "/bogus", "/exit", "never asked"]
    run = subprocess.run([sys.executable, "-m", "mmtune.cli", "chat", "--model", str(world / "model"), "--image", red,
                          "--max-new-tokens", "6"], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    streamed = [line.removeprefix("assistant: ").strip() for line in out if line.startswith("assistant: ")]
    # The same conversation held in-process, without streaming: the streamed answers are its greedy answers.
    loaded = load_tuned(world / "model")
    session = ChatSession(loaded.model, loaded.processor, image=red, max_new_tokens=6)
    expected = [session.ask(lines[0]), session.ask(lines[1])]
    session.show(blue)
    expected.append(session.ask(lines[3]))
    session.reset()
    expected.append(session.ask(lines[6]))
    assert streamed == expected and len(streamed) == 4  # nothing after /exit is answered
    assert f"(now about {blue})" in out
    assert any(line.startswith("(image nope.png does not exist; still talking about") for line in out)
    assert "(conversation reset)" in out and any(line.startswith("(unknown command /bogus;") for line in out)


def test_turns_carry_the_conversation_and_images(world):
    loaded = load_tuned(world / "model")
    red, blue = str(world / "red.png"), str(world / "blue.png")
    session = ChatSession(loaded.model, loaded.processor, image=red, max_new_tokens=4)
    first = session.ask("what colour is the circle?")
    session.ask("is there a star?")
    assert session.show(blue) is False  # LLaVA takes several images: the conversation goes on
    session.ask("what colour is the circle?")
    assert session.images == [red, blue] and len(session.messages) == 6
    text = render(loaded.processor, session.messages)
    assert text.count("what colour is the circle?") == 2 and first in text
    session.reset()
    assert session.messages == [] and session.pending == blue
    one_image = ChatSession(loaded.model, loaded.processor, image=red, images_per_prompt=1, max_new_tokens=2)
    one_image.ask("is there a star?")
    assert one_image.show(blue) is True and one_image.messages == [] and one_image.pending == blue
    with pytest.raises(FileNotFoundError, match="image nope.png does not exist"):
        session.show("nope.png")
