"""QLoRA: a 4-/8-bit base under LoRA trains on CPU for two families, saves a delta that exports as a
full-precision merged checkpoint, refuses strategies that would train quantized weights, and says
what to install when bitsandbytes is missing."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText

from mmtune.config import ConfigError, from_dict
from mmtune.data.collate import SFTCollator
from mmtune.models import quantization
from mmtune.models.loading import load_model
from mmtune.models.quantization import MissingBitsandbytesError, QuantizationConfig, is_quantized, quantization_of
from mmtune.recipes.export import export
from mmtune.recipes.sft import SFTConfig, TrainingConfig, train_sft
from mmtune.strategies import apply_strategy
from mmtune.strategies.checkpoint import MMTUNE_FILE, load_tuned
from tests.recipes.conftest import make_samples

needs_bnb = pytest.mark.skipif(quantization.bitsandbytes_version() is None
                               or quantization.bitsandbytes_version() < quantization.MIN_BITSANDBYTES,
                               reason="bitsandbytes >= 0.50 is not installed (pip install 'mmtune[qlora]')")
FAMILIES = ("llava", "qwen2_vl")
SETTINGS = {4: QuantizationConfig(bits=4, type="nf4", double_quant=True), 8: QuantizationConfig(bits=8)}


@pytest.fixture(scope="module", params=FAMILIES)
def base_dir(request, tmp_path_factory):
    from mmtune.models.tiny import save_tiny

    return save_tiny(request.param, tmp_path_factory.mktemp("qlora") / request.param, seed=0)


def _logits(model, processor, samples):
    batch = SFTCollator(processor)(samples)
    batch.pop("labels")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.mark.parametrize("value, message", [
    ({"bits": 3}, "bits must be 4 or 8"), ({"type": "int4"}, "type must be one of nf4, fp4"),
    ({"compute_dtype": "fp8"}, "compute_dtype must be one of"),
])
def test_config_names_the_wrong_key(value, message):
    with pytest.raises(ValueError, match=message):
        QuantizationConfig(**value)


def test_train_config_reads_model_quantization():
    config = from_dict(SFTConfig, {"model": "m", "data": [{"path": "d.jsonl"}],
                                   "model_quantization": {"bits": 4, "type": "fp4", "double_quant": False}})
    assert config.model_quantization == QuantizationConfig(bits=4, type="fp4", double_quant=False)
    with pytest.raises(ConfigError, match="model_quantization.bits must be an integer"):
        from_dict(SFTConfig, {"model": "m", "data": [{"path": "d.jsonl"}], "model_quantization": {"bits": "four"}})


def test_missing_bitsandbytes_says_what_to_install(monkeypatch):
    monkeypatch.setattr(quantization, "bitsandbytes_version", lambda: None)
    with pytest.raises(MissingBitsandbytesError, match=r"pip install 'mmtune\[qlora\]'.*remove model_quantization"):
        SETTINGS[4].bitsandbytes_config()


@needs_bnb
@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_lora_trains_saves_and_exports_full_precision(base_dir, bits, tmp_path):
    import bitsandbytes as bnb

    loaded = load_model(base_dir, quantization=SETTINGS[bits])
    layer = {4: bnb.nn.Linear4bit, 8: bnb.nn.Linear8bitLt}[bits]
    quantized = [n for n, m in loaded.model.named_modules() if isinstance(m, layer)]
    assert is_quantized(loaded.model) and any(".layers.0." in n for n in quantized)
    samples = make_samples(root=tmp_path / "images")
    result = train_sft(loaded.model, loaded.processor, samples, strategy="lora(r=4, alpha=8, groups=llm)",
                       output_dir=tmp_path / "run",
                       training=TrainingConfig(lr=5e-2, max_steps=3, batch_size=4, save_steps=0, warmup_ratio=0.0))
    assert len(result.losses) == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert 0 < result.summary.trainable_params < 20_000  # only the LoRA factors train

    record = json.loads((result.final_dir / MMTUNE_FILE).read_text())
    assert record["format"] == "delta" and record["base_quantization"]["bits"] == bits
    assert record["base_quantization"] == quantization_of(result.model)

    out = export(result.final_dir, tmp_path / "exported")
    exported = AutoModelForImageTextToText.from_pretrained(out)
    assert exported.config.to_dict().get("quantization_config") is None
    assert all(p.dtype == torch.float32 for p in exported.parameters())
    # the export is the adapter merged into the full-precision base: the tuned delta loaded on that
    # base gives the same logits, and they differ from the base's own
    tuned = load_tuned(result.final_dir)
    assert not is_quantized(tuned.model)
    probe = make_samples(3, root=tmp_path / "images")
    got = _logits(exported, tuned.processor, probe)
    torch.testing.assert_close(got, _logits(tuned.model, tuned.processor, probe), atol=1e-5, rtol=0)
    plain = load_model(base_dir)
    assert (got - _logits(plain.model, plain.processor, probe)).abs().max() > 1e-4


@needs_bnb
@pytest.mark.parametrize("spec, refused", [("full", "full"), ("lora(r=4)+projector", "projector")])
def test_strategies_that_train_quantized_weights_are_refused(base_dir, spec, refused):
    loaded = load_model(base_dir, quantization=SETTINGS[4])
    with pytest.raises(ValueError, match=rf"strategy part\(s\) {refused} train the base model's own weights"):
        apply_strategy(loaded.model, spec, loaded.groups)
