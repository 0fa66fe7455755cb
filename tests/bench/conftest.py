"""Fixtures shared by the bench tests."""
import pytest


@pytest.fixture(scope="module")
def untrained_world_model(tmp_path_factory):
    """The world model before pre-training: the world tokenizer and processor, random weights."""
    from mmtune.world.model import build_base_model
    from mmtune.world.tokenizer import world_processor

    out = tmp_path_factory.mktemp("world") / "model"
    build_base_model("tiny", seed=0).save_pretrained(out, safe_serialization=True)
    world_processor().save_pretrained(out)
    return out
