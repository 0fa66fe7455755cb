"""export: a merged LoRA checkpoint is a plain transformers model with the tuned logits; infer answers."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText

from mmtune.data.collate import SFTCollator
from mmtune.recipes.export import export
from mmtune.recipes.infer import infer
from mmtune.recipes.sft import TrainingConfig, train_sft
from mmtune.strategies.checkpoint import load_tuned
from tests.recipes.conftest import load_plain, make_samples


@pytest.fixture(scope="module")
def tuned_lora(tmp_path_factory):
    from mmtune.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("export")
    base = save_tiny("llava", root / "base", seed=0)
    model, processor = load_plain(base)
    result = train_sft(model, processor, make_samples(root=root / "images"), strategy="lora(r=4, alpha=8, groups=llm)",
                       output_dir=root / "run",
                       training=TrainingConfig(lr=5e-2, max_steps=3, batch_size=4, save_steps=0, warmup_ratio=0.0))
    return base, result.final_dir, root


def _logits(model, processor, samples):
    batch = SFTCollator(processor)(samples)
    batch.pop("labels")
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_exported_lora_matches_unmerged_and_differs_from_base(tuned_lora):
    base, final, root = tuned_lora
    out = export(final, root / "exported")
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    exported = AutoModelForImageTextToText.from_pretrained(out)
    tuned = load_tuned(final)
    samples = make_samples(3, root=root / "images")
    got = _logits(exported, tuned.processor, samples)
    torch.testing.assert_close(got, _logits(tuned.model, tuned.processor, samples), atol=1e-5, rtol=0)
    base_model, processor = load_plain(base)
    assert (got - _logits(base_model, processor, samples)).abs().max() > 1e-4


def test_export_refuses_to_overwrite(tuned_lora, tmp_path):
    _, final, _ = tuned_lora
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export(final, tmp_path)


def test_infer_decodes_a_greedy_answer(tuned_lora):
    _, final, root = tuned_lora
    image = root / "images" / "0.png"
    first = infer(final, str(image), "what color is the image", max_new_tokens=5)
    assert isinstance(first, str) and first == infer(final, str(image), "what color is the image", max_new_tokens=5)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        infer(final, str(root / "missing.png"), "what color")
