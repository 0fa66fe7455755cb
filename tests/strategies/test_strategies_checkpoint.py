"""save_tuned / load_tuned round trips and merge_for_export parity."""

from __future__ import annotations

import json

import pytest
import torch

from mmtune.models.loading import load_model
from mmtune.models.tiny import save_tiny
from mmtune.strategies import apply_strategy
from mmtune.strategies.checkpoint import EXTRA_WEIGHTS, load_tuned, merge_for_export, save_tuned


@pytest.fixture
def base_dir(tmp_path):
    return save_tiny("llava", tmp_path / "base")


def _inputs(processor):
    from PIL import Image

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what shape is it"}]}
    ]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    image = Image.new("RGB", (32, 32), (200, 30, 60))
    return dict(processor(text=[prompt], images=[[image]], return_tensors="pt"))


def _perturb(model):
    """Stand-in for training: move every trainable tensor so a failed load cannot go unnoticed."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def _logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize(
    "spec, layout, files",
    [
        ("last+projector", "full", {"model.safetensors", "config.json"}),
        ("lora(r=4)+projector", "delta", {"adapter_model.safetensors", "adapter_config.json", EXTRA_WEIGHTS}),
        ("adapter(bottleneck=4)", "delta", {EXTRA_WEIGHTS}),
        ("pissa(r=2)", "delta", {"adapter_model.safetensors"}),
        ("llama_adapter(n=3, layers=1)", "delta", {EXTRA_WEIGHTS}),
        ("prompt(n=3)", "delta", {"adapter_model.safetensors"}),
    ],
)
def test_round_trip_gives_identical_logits(base_dir, tmp_path, spec, layout, files):
    base = load_model(base_dir)
    model, _ = apply_strategy(base.model, spec, base.groups)
    _perturb(model)
    inputs = _inputs(base.processor)
    expected = _logits(model, inputs)
    out = save_tuned(model, base.processor, tmp_path / "tuned", spec, {"run": "test"})
    record = json.loads((out / "mmtune.json").read_text())
    assert record["strategy"] == spec and record["format"] == layout and record["meta"] == {"run": "test"}
    assert files <= {p.name for p in out.iterdir()}
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    loaded = load_tuned(out)
    torch.testing.assert_close(_logits(loaded.model, inputs), expected, atol=0, rtol=0)
    if layout == "delta":
        assert record["base_model"] == str(base_dir.resolve())
        assert not (out / "model.safetensors").exists()  # only what the strategy trains


def test_plain_checkpoint_loads_directly(base_dir):
    loaded = load_tuned(base_dir)
    assert type(loaded.model).__name__ == "LlavaForConditionalGeneration"


def test_delta_without_known_base_is_refused(llava, tmp_path):
    model, _ = apply_strategy(llava.model, "lora(r=2)", llava.groups)
    with pytest.raises(ValueError, match="meta=\\{'base_model'"):
        save_tuned(model, None, tmp_path / "x", "lora(r=2)", {})


@pytest.mark.parametrize(
    "spec", ["lora(r=4)", "dora(r=4)", "loha(r=2)", "ia3", "vera(r=4)", "lora(r=4, groups=vision|llm)"]
)
def test_merge_for_export_matches_unmerged(llava, spec):
    model, _ = apply_strategy(llava.model, spec, llava.groups)
    _perturb(model)
    inputs = llava.inputs()
    expected = _logits(model, inputs)
    merged = merge_for_export(model, spec)
    assert type(merged).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, inputs), expected, atol=1e-5, rtol=0)


def test_merged_export_saves_as_plain_checkpoint(base_dir, tmp_path):
    base = load_model(base_dir)
    model, _ = apply_strategy(base.model, "lora(r=4)", base.groups)
    _perturb(model)
    inputs = _inputs(base.processor)
    expected = _logits(model, inputs)
    merged = merge_for_export(model, "lora(r=4)")
    merged.save_pretrained(tmp_path / "export")
    base.processor.save_pretrained(tmp_path / "export")
    torch.testing.assert_close(
        _logits(load_model(tmp_path / "export").model, inputs), expected, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        ("adapter(bottleneck=4)", r"adapter\(bottleneck=4\) of strategy 'adapter\(bottleneck=4\)' adds computation"),
        ("llama_adapter(n=2, layers=1)", r"llama_adapter\(n=2, layers=1\) of strategy .* adds computation"),
        ("last+prompt(n=2)", r"prompt\(n=2\) of strategy 'last\+prompt\(n=2\)' adds computation"),
    ],
)
def test_merge_refuses_unmergeable_strategies(llava, spec, message):
    model, _ = apply_strategy(llava.model, spec, llava.groups)
    with pytest.raises(ValueError, match=message):
        merge_for_export(model, spec)
