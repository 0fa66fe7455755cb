"""The world model's learnable-query resampler projector: shapes, registration with the Auto
classes, save/load round trip, group resolution for strategies, and that it learns."""
import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

from mmtune.data.collate import SFTCollator
from mmtune.models import load_model, resolve_groups
from mmtune.models.resampler import (
    MODEL_TYPE,
    ResamplerProjector,
    WorldLlavaConfig,
    WorldLlavaForConditionalGeneration,
)
from mmtune.recipes import pretrain as pretrain_recipe
from mmtune.strategies import apply_strategy
from mmtune.world.model import build_base_model, tiny_model_config
from mmtune.world.tasks import get_world_task
from mmtune.world.tokenizer import world_processor


@pytest.fixture(autouse=True)
def one_thread():
    # Two spinning threads on a shared, overloaded CPU run many times slower than one (30 steps:
    # ~2 s on one thread, ~40 s on two while another job runs).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch():
    """Two rendered world scenes with captions, as the world processor and collator prepare them."""
    return SFTCollator(world_processor())(get_world_task("caption").samples("train", 2))


def test_projector_gives_one_o1_token_per_query():
    projector = ResamplerProjector(64, 128, num_patches=16, num_queries=16, num_heads=4)
    out = projector(torch.randn(3, 16, 64))
    assert out.shape == (3, 16, 128)
    assert 0.3 < out.std().item() < 3.0  # O(1), like the MLP projector's output


def test_resampler_is_a_registered_llava_variant_and_mlp_stays_plain_llava():
    config = tiny_model_config("tiny", projector="resampler")
    assert isinstance(config, WorldLlavaConfig) and config.model_type == MODEL_TYPE
    assert config.projector_type == "resampler"
    assert type(AutoConfig.for_model(MODEL_TYPE)) is WorldLlavaConfig
    assert type(AutoModelForImageTextToText.from_config(config)) is WorldLlavaForConditionalGeneration
    assert type(tiny_model_config("tiny")) is LlavaConfig
    assert type(build_base_model("tiny", seed=0)) is LlavaForConditionalGeneration


def test_unknown_projector_names_the_option_and_choices():
    with pytest.raises(ValueError, match=r"projector 'perceiver'.*option projector.*'mlp', 'resampler'"):
        build_base_model("tiny", projector="perceiver")


def test_forward_on_rendered_scenes_and_round_trip_through_load_model(batch, tmp_path):
    model = build_base_model("tiny", seed=0, projector="resampler")
    assert isinstance(model.model.multi_modal_projector, ResamplerProjector)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.multi_modal_projector.queries.grad.abs().sum() > 0

    model.save_pretrained(tmp_path)
    world_processor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == MODEL_TYPE
    assert list(tmp_path.glob("*.safetensors"))
    loaded = load_model(tmp_path)
    assert type(loaded.model) is WorldLlavaForConditionalGeneration
    assert loaded.groups.family.name == "llava"
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, loaded.model(**batch).logits, atol=1e-5)

    # Evaluation generates: the image tokens must line up with the queries on that path too.
    sample = get_world_task("vqa").samples("test", 1)[0]
    text = loaded.processor.apply_chat_template(sample.prompt_messages(), tokenize=False, add_generation_prompt=True)
    inputs = loaded.processor(images=sample.images, text=text, return_tensors="pt")
    out = loaded.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_projector_strategy_trains_exactly_the_resampler_and_lora_only_llm_linears():
    model = build_base_model("tiny", seed=0, projector="resampler")
    groups = resolve_groups(model)
    assert groups.paths["projector"] == "model.multi_modal_projector"
    resampler = {f"model.multi_modal_projector.{n}" for n, _ in model.model.multi_modal_projector.named_parameters()}
    tuned, _ = apply_strategy(model, "projector", groups)
    assert {n for n, p in tuned.named_parameters() if p.requires_grad} == resampler

    tuned, _ = apply_strategy(build_base_model("tiny", seed=0, projector="resampler"), "lora")
    wrapped = [n for n, m in tuned.named_modules() if hasattr(m, "lora_A")]
    assert wrapped and all(groups.group_of(n) == "language_layers" for n in wrapped)


def test_short_training_lowers_the_loss(tmp_path):
    from mmtune.recipes.sft import TrainingConfig, train_sft

    model, processor = build_base_model("tiny", seed=0, projector="resampler"), world_processor()
    samples = get_world_task("caption").samples("train", 8)
    training = TrainingConfig(lr=3e-3, max_steps=30, batch_size=4, save_steps=0, warmup_ratio=0.0, logging_steps=5)
    losses = train_sft(model, processor, samples, strategy="llm+projector", output_dir=tmp_path,
                       training=training).losses
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


def test_resampler_base_has_its_own_directory_and_cli_option(monkeypatch):
    mlp, resampler = pretrain_recipe.base_model_dir("quick", 0), pretrain_recipe.base_model_dir(
        "quick", 0, projector="resampler")
    assert mlp.name.startswith("quick-seed0-") and resampler.name.startswith("quick-resampler-seed0-")
    assert pretrain_recipe.settings_hash("quick") != pretrain_recipe.settings_hash("quick", projector="resampler")

    class Called(Exception):
        pass

    def fake_ensure(*args, **kwargs):
        raise Called(kwargs)

    monkeypatch.setattr(pretrain_recipe, "ensure_base_model", fake_ensure)
    from mmtune.cli import main

    with pytest.raises(Called) as called:
        main(["pretrain", "--projector", "resampler"])
    assert called.value.args[0]["projector"] == "resampler"
