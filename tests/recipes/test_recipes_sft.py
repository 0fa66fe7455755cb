"""train_sft: a selective and a LoRA strategy train, resume is exact, L2-SP and group lrs act."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from mmtune.recipes.sft import TrainingConfig, train_sft
from tests.recipes.conftest import load_plain


def _cfg(**kw) -> TrainingConfig:
    base = {"lr": 1e-2, "max_steps": 4, "batch_size": 2, "logging_steps": 1, "save_steps": 2, "seed": 0,
            "warmup_ratio": 0.0}
    return TrainingConfig(**{**base, **kw})


def test_training_config_rejects_bad_values():
    with pytest.raises(ValueError, match="training.lr_scheduler"):
        TrainingConfig(lr_scheduler="cosine_wrong")
    with pytest.raises(ValueError, match="training.batch_size"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValueError, match="training.group_lr.projector"):
        TrainingConfig(group_lr={"projector": -1})


def test_selective_strategy_trains_only_selected_groups(tiny_llava, samples, tmp_path):
    model, processor = tiny_llava
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_sft(model, processor, samples, strategy="projector", output_dir=tmp_path, training=_cfg())
    assert len(result.losses) == 4 and all(l > 0 for l in result.losses)
    changed = {n for n, p in result.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("multi_modal_projector" in n for n in changed)
    assert (tmp_path / "checkpoint-2").is_dir() and (tmp_path / "checkpoint-4").is_dir()
    assert (tmp_path / "final").is_dir()
    assert result.peak_memory_mb > 0


class _StopAfter(TrainerCallback):
    """Simulates a crash: stops training right after global step ``k`` was checkpointed."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.k:
            control.should_save = True
            control.should_training_stop = True
        return control


@pytest.mark.parametrize("strategy", ["top(k=1)+projector", "lora(r=4, alpha=8, groups=llm)"])
def test_resume_continues_exactly(strategy, samples, tiny_dir, tmp_path, monkeypatch):
    from mmtune.recipes import trainer as trainer_mod

    cfg = _cfg(max_steps=6, save_steps=100, lr_scheduler="cosine", warmup_ratio=0.2)
    full = train_sft(*load_plain(tiny_dir), samples, strategy=strategy,
                     output_dir=tmp_path / "full", training=cfg)

    # First run: interrupted after step 3 (checkpoint-3 written), as a crash would leave it.
    real_add = trainer_mod.SFTTrainer.add_callback
    monkeypatch.setattr(trainer_mod.SFTTrainer, "add_callback",
                        lambda self, cb: (real_add(self, cb), real_add(self, _StopAfter(3)))[0])
    part = tmp_path / "part"
    train_sft(*load_plain(tiny_dir), samples, strategy=strategy, output_dir=part, training=cfg)
    monkeypatch.setattr(trainer_mod.SFTTrainer, "add_callback", real_add)
    assert (part / "checkpoint-3").is_dir()

    resumed = train_sft(*load_plain(tiny_dir), samples, strategy=strategy,
                        output_dir=part, training=cfg, resume=True)
    assert len(resumed.losses) == 6
    assert resumed.losses == pytest.approx(full.losses, abs=1e-6)
    meta = json.loads(next((part / "final").glob("mmtune*.json")).read_text())
    assert json.dumps(meta)  # saved alongside the weights


def test_group_lr_zero_freezes_that_group_in_practice(tiny_llava, samples, tmp_path):
    model, processor = tiny_llava
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_sft(model, processor, samples, strategy="top(k=1)+projector", output_dir=tmp_path,
                       training=_cfg(max_steps=2, save_steps=0, group_lr={"projector": 0.0}))
    changed = {n for n, p in result.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("language_model.layers.1." in n for n in changed)


def _distance_from_init(tiny_dir, samples, out, l2sp: float) -> float:
    model, processor = load_plain(tiny_dir)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_sft(model, processor, samples, strategy="projector", output_dir=out,
                       training=_cfg(lr=5e-2, max_steps=3, save_steps=0),
                       methods=[f"l2sp(weight={l2sp})"] if l2sp else [])
    return sum(float((p.detach() - init[n]).pow(2).sum()) for n, p in result.model.named_parameters())


def test_l2sp_keeps_weights_closer_to_their_start(tiny_dir, samples, tmp_path):
    free = _distance_from_init(tiny_dir, samples, tmp_path / "free", l2sp=0.0)
    anchored = _distance_from_init(tiny_dir, samples, tmp_path / "anchored", l2sp=100.0)
    assert 0 < anchored < free


def test_invalid_samples_fail_before_step_0_or_are_skipped(tiny_llava, samples, tmp_path):
    from mmtune.data.sample import Sample, assistant_turn, user_turn

    broken = Sample("broken-1", [user_turn("what color"), assistant_turn("red")], [str(tmp_path / "nope.png")])
    model, processor = tiny_llava
    with pytest.raises(ValueError, match="broken-1"):
        train_sft(model, processor, [*samples, broken], strategy="projector", output_dir=tmp_path / "a",
                  training=_cfg(max_steps=1, save_steps=0))
    assert not (tmp_path / "a" / "final").exists()
    result = train_sft(model, processor, [*samples, broken], strategy="projector", output_dir=tmp_path / "b",
                       training=_cfg(max_steps=1, save_steps=0), skip_invalid=True)
    meta = json.loads((result.final_dir / "mmtune.json").read_text())["meta"]
    assert (meta["num_samples"], meta["num_skipped"]) == (len(samples), 1)


def test_accumulation_checkpointing_length_grouping_and_eval_run_together(tiny_llava, samples, tmp_path):
    model, processor = tiny_llava
    result = train_sft(model, processor, samples, strategy="top(k=1)", output_dir=tmp_path,
                       training=_cfg(max_steps=2, save_steps=0, grad_accum=2, gradient_checkpointing=True,
                                     group_by_length=True),
                       eval_samples=samples[:2])
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.eval_loss is not None and result.eval_loss > 0


def test_samples_validated_by_the_caller_train_the_same_run(samples, tiny_dir, tmp_path, monkeypatch):
    # The bench validates a target's samples once for all its rows (validated=True): the run must be the
    # one train_sft would have made checking them itself (same losses, to the bit), and it must not encode
    # them again; a data method's new samples are still checked.
    from mmtune.recipes import sft

    config = TrainingConfig(max_steps=3, batch_size=2, lr=1e-2, save_steps=0, seed=3)
    checked = sft.checked_samples(samples, load_plain(tiny_dir)[1], None, skip_invalid=False)
    own = train_sft(*load_plain(tiny_dir), samples, strategy="lora(r=4, alpha=8)", output_dir=tmp_path / "a",
                    training=config)
    calls = []
    monkeypatch.setattr(sft, "checked_samples", lambda s, *a, **k: calls.append(len(s)) or list(s))
    given = train_sft(*load_plain(tiny_dir), checked, strategy="lora(r=4, alpha=8)", output_dir=tmp_path / "b",
                      training=config, validated=True)
    assert given.losses == own.losses and calls == []
    train_sft(*load_plain(tiny_dir), checked, strategy="lora(r=4, alpha=8)", output_dir=tmp_path / "c",
              training=config, validated=True, methods=["replay(fraction=0.5)"], seen_samples=samples[:2])
    assert calls == [len(checked) * 2]  # the replay mix was checked
