"""training.report_to (TensorBoard event files read back with TensorBoard's own reader), scores logged after
training, and the model cards of final/ and of an export."""
from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmtune.config import ConfigError, load_config
from mmtune.model_card import Score, add_scores, read_card
from mmtune.recipes.export import export
from mmtune.recipes.sft import TrainingConfig, train_sft
from mmtune.tracking import check_report_to, log_scores
from tests.recipes.conftest import load_plain, make_samples


def _scalars(folder, tag):
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from mmtune.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("tracked")
    base = save_tiny("llava", root / "base", seed=0)
    model, processor = load_plain(base)
    training = TrainingConfig(lr=5e-2, max_steps=3, batch_size=4, save_steps=0, warmup_ratio=0.0, logging_steps=1,
                              report_to=["tensorboard"])
    result = train_sft(model, processor, make_samples(root=root / "images"), strategy="lora(r=4, alpha=8, groups=llm)",
                       output_dir=root / "run", training=training, data_sources=[("data/colours.jsonl", 8)])
    return base, result, root


def test_each_step_loss_is_in_tensorboard_as_in_the_loss_log(tuned):
    _, result, root = tuned
    logged = [json.loads(line) for line in (root / "run" / "losses.jsonl").read_text().splitlines()]
    got = _scalars(root / "run" / "runs", "train/loss")
    assert [step for step, _ in got] == [r["step"] for r in logged] == [1, 2, 3]
    assert [value for _, value in got] == pytest.approx([r["loss"] for r in logged], rel=1e-6)


def test_scores_after_training_join_the_run_in_tensorboard(tmp_path):
    log_scores(["tensorboard"], {"E": 12.5, "seen/gqa": 70.0}, logging_dir=tmp_path, run_name="r", step=3)
    log_scores([], {"E": 1.0}, logging_dir=tmp_path / "none", run_name="r")  # no tracker: nothing written
    assert _scalars(tmp_path, "eval/E") == [(3, 12.5)]
    assert _scalars(tmp_path, "eval/seen/gqa") == [(3, 70.0)]
    assert not (tmp_path / "none").exists()


def test_report_to_is_checked_before_training():
    assert check_report_to(["none"]) == [] and check_report_to("tensorboard") == ["tensorboard"]
    assert TrainingConfig(report_to=["none"]).report_to == []
    with pytest.raises(ValueError, match="unknown tracker 'tensorbored'; use any of tensorboard, wandb, mlflow, trackio"):
        TrainingConfig(report_to=["tensorbored"])
    with pytest.raises(ValueError, match="'none' turns every tracker off"):
        TrainingConfig(report_to=["none", "tensorboard"])


def test_a_tracker_not_installed_names_its_pip_package(tmp_path):
    from transformers.integrations import is_wandb_available

    from mmtune.recipes.sft import SFTConfig

    if is_wandb_available():
        pytest.skip("wandb is installed here")
    config = tmp_path / "c.yaml"
    config.write_text("model: m\ndata: [{path: x.jsonl}]\ntraining: {report_to: [wandb]}\n")
    with pytest.raises((ConfigError, ValueError), match="wandb is asked for but not installed; run `pip install wandb`"):
        load_config(SFTConfig, config)


def test_final_dir_has_a_model_card(tuned):
    base, result, _ = tuned
    metadata, body = read_card(result.final_dir)
    assert metadata["base_model"] == str(base) and metadata["library_name"] == "peft"
    assert metadata["datasets"] == ["data/colours.jsonl"] and {"mmtune", "sft", "lora"} <= set(metadata["tags"])
    assert "`lora(r=4, alpha=8, groups=llm)`" in body and "| data/colours.jsonl | 8 |" in body
    assert "| max_steps | `3` |" in body and "report_to" not in body
    assert "## Scores\n\nNot measured yet" in body


def test_scores_merge_into_the_card_and_an_export_keeps_them(tuned, tmp_path):
    _, result, root = tuned
    add_scores(result.final_dir, [Score("world_vqa", "vqa_accuracy", 50.0, "mmtune eval")])
    add_scores(result.final_dir, [Score("world_vqa", "vqa_accuracy", 61.25, "mmtune eval"),
                                  Score("iconqa", "E", 12.0, "bench: E / F / O")])
    metadata, body = read_card(result.final_dir)
    results = metadata["model-index"][0]["results"]
    assert [(r["dataset"]["name"], r["metrics"][0]["value"]) for r in results] == [("world_vqa", 61.25), ("iconqa", 12.0)]
    assert "| mmtune eval | world_vqa | vqa_accuracy | 61.25 |" in body and body.count("## Scores") == 1
    out = export(result.final_dir, tmp_path / "exported")
    exported, exported_body = read_card(out)
    assert exported["library_name"] == "transformers" and exported["model-index"][0]["results"] == results
    assert "merged into plain weights" in exported_body and "| data/colours.jsonl | 8 |" in exported_body
