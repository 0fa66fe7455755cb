"""Pre-training recipe: a very short run learns (loss goes down), is saved, keyed and reused."""
import json

import pytest
import torch

from mmtune.recipes import pretrain as pretrain_recipe
from mmtune.recipes.pretrain import PretrainPreset, base_model_dir, ensure_base_model


@pytest.fixture
def one_thread():
    # Two spinning threads on a shared, overloaded CPU run many times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def micro_preset(monkeypatch):
    # 4 samples per seen task, overfit by repetition: the loss must fall within a few steps.
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro", PretrainPreset("tiny", 4, 2, 2, 1e-3, 12, 3e-3, 8))
    return "micro"


def test_short_pretraining_lowers_the_loss_and_is_reused(micro_preset, monkeypatch, one_thread):
    path = ensure_base_model(micro_preset, seed=0)
    assert path == base_model_dir(micro_preset, 0) and (path / "config.json").is_file()
    record = json.loads((path / "pretrain.json").read_text())
    losses = record["instruct_losses"]
    assert len(losses) == 12 and len(record["align_losses"]) == 2
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    # both stages' TensorBoard logs (report_to's default) stay with the base: at this size each stage logs
    # its run's mean loss, the mean of the per-step losses pretrain.json keeps
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for stage, logged in (("align", record["align_losses"]), ("instruct", losses)):
        events = EventAccumulator(str(path / "runs" / stage))
        events.Reload()
        (mean,) = [e.value for e in events.Scalars("train/train_loss")]
        assert mean == pytest.approx(sum(logged) / len(logged), rel=1e-3)

    def no_training(*a, **k):
        raise AssertionError("an existing base model must be reused, not trained again")

    monkeypatch.setattr(pretrain_recipe, "pretrain", no_training)
    assert ensure_base_model(micro_preset, seed=0) == path

    # A plain transformers checkpoint: the Auto classes load model and processor.
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmtune.world.tasks import get_world_task

    model, processor = AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
    sample = get_world_task("vqa").samples("test", 1)[0]
    text = processor.apply_chat_template(sample.prompt_messages(), tokenize=False, add_generation_prompt=True)
    inputs = processor(images=sample.images, text=text, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_directory_is_keyed_by_preset_seed_and_settings(micro_preset, monkeypatch):
    a = base_model_dir(micro_preset, 0)
    assert a != base_model_dir(micro_preset, 1) and a != base_model_dir("quick", 0)
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro", PretrainPreset("tiny", 4, 2, 2, 1e-3, 13, 3e-3, 8))
    assert base_model_dir(micro_preset, 0) != a


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="quick"):
        base_model_dir("huge", 0)
