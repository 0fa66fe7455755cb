"""save_tiny -> load_model round trips; loading is local, safetensors-first, and explains failures."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText

from mmtune.models import load_model
from mmtune.models.tiny import build_tiny, save_tiny

from .conftest import CONVERSATION


def _logits(model, processor, image):
    text = processor.apply_chat_template(CONVERSATION, tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    inputs.pop("labels", None)
    with torch.no_grad():
        return model(**inputs).logits


def test_save_tiny_then_load_model_gives_identical_logits(family, tmp_path, image):
    model, processor = build_tiny(family, seed=1)
    out = save_tiny(family, tmp_path / family, seed=1)
    assert any(out.glob("*.safetensors"))
    loaded = load_model(out)
    assert loaded.groups.family.name == family
    assert type(loaded.model) is type(model)
    assert loaded.processor.apply_chat_template(CONVERSATION, tokenize=False) == processor.apply_chat_template(
        CONVERSATION, tokenize=False
    )
    torch.testing.assert_close(_logits(loaded.model, loaded.processor, image), _logits(model, processor, image),
                               rtol=0, atol=0)


def test_plain_transformers_loads_a_tiny_checkpoint(tmp_path):
    out = save_tiny("llava", tmp_path / "llava")
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert model.config.model_type == "llava"


def test_dtype_is_applied(tmp_path):
    loaded = load_model(save_tiny("llava", tmp_path / "llava"), dtype="bf16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def _pickle_only(tmp_path):
    """A checkpoint whose weights exist only as a pickle (transformers itself writes safetensors)."""
    from safetensors.torch import load_file

    out = save_tiny("llava", tmp_path / "pickled")
    weights = out / "model.safetensors"
    torch.save(load_file(weights), out / "pytorch_model.bin")
    weights.unlink()
    return out


def test_pickle_only_checkpoint_is_refused_without_allow_pickle(tmp_path):
    with pytest.raises(ValueError, match="pass --allow-pickle"):
        load_model(_pickle_only(tmp_path))


def test_pickle_only_checkpoint_loads_with_allow_pickle(tmp_path, image):
    model, processor = build_tiny("llava")
    loaded = load_model(_pickle_only(tmp_path), allow_pickle=True)
    torch.testing.assert_close(_logits(loaded.model, loaded.processor, image), _logits(model, processor, image),
                               rtol=0, atol=0)


def test_missing_directory_and_config_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_model(tmp_path / "empty")


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        load_model(save_tiny("llava", tmp_path / "llava"), dtype="float8")
