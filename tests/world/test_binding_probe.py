"""benchmarks/world_experiments/binding_probe.py's episodes and scoring position (the tuning runs take minutes).

Each probe episode shows k bindings once and then repeats one of them; the probe reads the model's
prediction exactly where that repeat's name is due, and the held-out names never occur in training."""
import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "world_experiments" / "binding_probe.py"


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("binding_probe", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["binding_probe"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def processor():
    from mmtune.world.tokenizer import world_processor

    return world_processor()


def _text(sample) -> str:
    return " ".join(part["text"] if isinstance(part, dict) else part for m in sample.messages
                    for part in (m["content"] if isinstance(m["content"], list) else [m["content"]])
                    if not isinstance(part, dict) or part["type"] == "text")


def _bound(form: str, text: str) -> list[str]:
    """The names a training episode binds: the word after each shape, or after "this is a/an"."""
    from mmtune.world.scenes import SHAPES

    words = text.replace(".", " ").replace("?", " ").split()
    if form == "image-document":
        return [words[i + 3] for i, w in enumerate(words[:-3]) if w == "this" and words[i + 1] == "is"]
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in SHAPES and words[i - 1] != "is"]


@pytest.mark.parametrize("form", ["text-answer", "text-document", "image-document"])
def test_held_out_names_are_never_bound_in_training(probe, form):
    trained, held_out = probe.names()
    assert len(held_out) == probe.HELD_OUT and not set(trained) & set(held_out)
    seen = set()
    for i in range(40 if form == "image-document" else 200):
        sample, name = probe.episode(form, random.Random(i), trained)
        bound = _bound(form, _text(sample))
        assert name is None and bound and set(bound) <= set(trained)
        seen |= set(bound)
    assert len(seen) > 20


@pytest.mark.parametrize("form", ["text-answer", "text-document", "image-document"])
@pytest.mark.parametrize("k", [2, 4])
def test_probe_episode_repeats_one_binding(probe, form, k):
    _, held_out = probe.names()
    sample, name = probe.episode(form, random.Random(f"t{k}"), held_out, probe_k=k)
    text = _text(sample)
    assert name in held_out
    if form == "image-document":
        assert len(sample.images) == k + 1
        assert text.replace(".", " ").split().count(name) == 2  # bound once, then the repeat names it again
    elif form == "text-document":
        pairs = [p.split() for p in text.split(".") if len(p.split()) == 2]
        assert len(pairs) == k + 1 and pairs[-1] in pairs[:-1] and pairs[-1][1] == name
    else:
        shown = text.split("What is")[0]
        asked = text.split("What is ")[1].split("?")[0]
        assert f"{asked} {name}." in shown and len(shown.split(".")) == k + 1


class _Oracle(torch.nn.Module):
    """Puts all its probability on one token at one position: where the probe must look."""

    def __init__(self, vocab: int, at: int, token: int):
        super().__init__()
        self.vocab, self.at, self.token = vocab, at, token

    def forward(self, input_ids, **_):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[0, self.at, self.token] = 1.0
        return type("Out", (), {"logits": logits})


@pytest.mark.parametrize("form", ["text-answer", "text-document"])
def test_scored_where_the_name_is_due(probe, processor, form):
    from mmtune.data.collate import SFTCollator

    collator, tokenizer = SFTCollator(processor), processor.tokenizer
    sample, name = probe.episode(form, random.Random(3), probe.names()[0], probe_k=2)
    ids = collator([sample])["input_ids"][0]
    spots = [i for i, t in enumerate(ids.tolist()) if tokenizer.decode([t]).strip() == name]
    due = spots[-1]  # the repeat's name, or the answer
    right = _Oracle(len(tokenizer), due - 1, ids[due].item())
    early = _Oracle(len(tokenizer), spots[0] - 1, ids[spots[0]].item())
    assert probe.next_token_right(right, collator, tokenizer, sample, name, form)
    assert not probe.next_token_right(early, collator, tokenizer, sample, name, form)
