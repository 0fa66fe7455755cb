"""The SFT fast paths change nothing but time: the label-position-only LM head gives transformers'
loss (and the same training run) as the full head, and it is off where positions would not line up."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmtune.recipes import trainer as trainer_mod
from mmtune.recipes.sft import TrainingConfig, train_sft
from mmtune.recipes.trainer import causal_lm_loss, computes_only_kept_logits, label_positions
from tests.recipes.conftest import load_plain


def _cfg(**kw) -> TrainingConfig:
    base = {"lr": 1e-2, "max_steps": 5, "batch_size": 3, "logging_steps": 1, "save_steps": 0, "seed": 0,
            "warmup_ratio": 0.0}
    return TrainingConfig(**{**base, **kw})


def test_label_positions_by_hand():
    labels = torch.tensor([[-100, -100, 7, 8, -100],
                           [-100, -100, -100, -100, 9]])
    # position t predicts t + 1: row 0 labels at 2, 3 -> positions 1, 2; row 1 at 4 -> position 3
    assert label_positions(labels).tolist() == [1, 2, 3]


def test_kept_logits_give_the_models_own_loss(tiny_llava):
    from mmtune.data.collate import SFTCollator
    from tests.recipes.conftest import make_samples

    model, processor = tiny_llava
    batch = SFTCollator(processor)(make_samples(4))
    with torch.no_grad():
        full = model(**batch)
        kept = model(**{k: v for k, v in batch.items() if k != "labels"},
                     logits_to_keep=label_positions(batch["labels"]))
    n_items = (batch["labels"][:, 1:] != -100).sum()
    assert kept.logits.shape[1] < full.logits.shape[1] // 2  # the answers are a part of each sequence
    assert float(causal_lm_loss(kept, batch["labels"])) == pytest.approx(float(full.loss), abs=1e-6)
    assert float(causal_lm_loss(full, batch["labels"])) == pytest.approx(float(full.loss), abs=1e-6)
    summed = model(**batch, num_items_in_batch=n_items).loss
    assert float(causal_lm_loss(kept, batch["labels"], n_items)) == pytest.approx(float(summed), abs=1e-6)


@pytest.mark.parametrize("strategy", ["lora(r=4, alpha=8, groups=llm)", "full"])
def test_training_with_kept_logits_matches_the_full_head(strategy, samples, tiny_dir, tmp_path, monkeypatch):
    used = []
    real = trainer_mod.computes_only_kept_logits
    monkeypatch.setattr(trainer_mod, "computes_only_kept_logits", lambda m: used.append(real(m)) or used[-1])
    fast = train_sft(*load_plain(tiny_dir), samples, strategy=strategy, output_dir=tmp_path / "fast",
                     training=_cfg(grad_accum=2))
    plain = train_sft(*load_plain(tiny_dir), samples, strategy=strategy, output_dir=tmp_path / "plain",
                      training=_cfg(grad_accum=2, logits_at_labels=False))
    assert used == [True]  # the option off, the head runs at every position without asking the model
    assert len(fast.losses) == 5
    assert fast.losses == pytest.approx(plain.losses, abs=1e-6)


def test_kept_logits_are_off_under_prompt_tuning_and_lwf(tiny_dir, samples, tmp_path):
    from mmtune.models import resolve_groups
    from mmtune.strategies import apply_strategy

    model, _ = load_plain(tiny_dir)
    assert computes_only_kept_logits(model)
    prompted, _ = apply_strategy(model, "prompt(n=4)", resolve_groups(model))
    assert not computes_only_kept_logits(prompted)  # virtual tokens shift every position
    from mmtune.methods.lwf import LwF

    assert LwF.reads_logits  # the trainer keeps every position's logits for its penalty
    result = train_sft(*load_plain(tiny_dir), samples, strategy="full", output_dir=tmp_path / "lwf",
                       training=_cfg(max_steps=2), methods=["lwf(weight=1.0)"])
    assert len(result.losses) == 2 and all(l > 0 for l in result.losses)


def test_the_full_head_is_a_recorded_setting_only_when_asked_for():
    from mmtune.bench.grid import PRESETS
    from mmtune.recipes.sft import training_settings

    assert training_settings(TrainingConfig())["logits_at_labels"] is True
    # runs recorded before the option existed computed the head everywhere: their settings still match
    assert "logits_at_labels" not in training_settings(TrainingConfig(logits_at_labels=False))
    # the bench presets keep the float path their published tables were measured on
    assert all(PRESETS[name]["training"]["logits_at_labels"] is False for name in ("quick", "full"))


def _clear_refs_writable() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(torch.cuda.is_available() or not _clear_refs_writable(), reason="Linux CPU peak RSS")
def test_cpu_peak_memory_counts_from_the_reset():
    # A bench worker inherits its parent's ru_maxrss across fork and exec: the peak must restart per run.
    from mmtune.recipes import sft

    big = torch.ones(100 * 2**20)  # 400 MiB, written
    big.add_(1)
    before = sft._peak_memory_mb()
    del big
    sft._reset_peak_memory()
    after = sft._peak_memory_mb()
    assert before - after > 300
    again = torch.ones(50 * 2**20)  # 200 MiB more is seen again
    assert sft._peak_memory_mb() > after + 150
    del again


def test_peak_memory_without_proc_is_the_lifetime_peak(monkeypatch, tmp_path):
    import resource
    import sys

    from mmtune.recipes import sft

    monkeypatch.setattr(sft, "_PROC_STATUS", tmp_path / "missing")
    monkeypatch.setattr(sft, "_PROC_CLEAR_REFS", tmp_path / "no" / "clear_refs")
    sft._reset_peak_memory()  # nothing to reset: no error
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expected = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    if not torch.cuda.is_available():
        assert sft._peak_memory_mb() == pytest.approx(expected, rel=0.05)


def _walk_every_parameter(monkeypatch):
    """The Trainer's own per-step walks over every parameter, as before mmtune skipped them."""
    from transformers import Trainer

    monkeypatch.setattr(trainer_mod.SFTTrainer, "_skip_parameter_walks", lambda self, model: None)
    monkeypatch.setattr(trainer_mod.SFTTrainer, "_clip_grad_norm", Trainer._clip_grad_norm)
    monkeypatch.setattr(trainer_mod.SFTTrainer, "floating_point_ops", Trainer.floating_point_ops)


def _recorded_train(monkeypatch, seen: dict):
    """Record each step's gradient norm, the FLOP count and what the model looks like after train()."""
    real_norm, real_train = trainer_mod.SFTTrainer._get_grad_norm, trainer_mod.SFTTrainer.train

    def norm(self, model, grad_norm=None):
        out = real_norm(self, model, grad_norm)
        seen.setdefault("norms", []).append(self.last_grad_norm)
        seen["patched"] = sorted(name for _, name in self._patched)
        return out

    def train(self, *a, **k):
        out = real_train(self, *a, **k)
        seen["flos"] = self.state.total_flos
        seen["left_patched"] = [n for n in ("train", "zero_grad") if n in vars(self.model_wrapped)]
        seen["grads"] = [p.grad for p in self.model.parameters() if p.grad is not None]
        return out

    monkeypatch.setattr(trainer_mod.SFTTrainer, "_get_grad_norm", norm)
    monkeypatch.setattr(trainer_mod.SFTTrainer, "train", train)


@pytest.mark.parametrize("strategy", ["lora(r=4, alpha=8, groups=llm)", "dora(r=4, alpha=8, groups=llm)", "full"])
def test_skipping_the_trainers_parameter_walks_changes_nothing(strategy, samples, tiny_dir, tmp_path, monkeypatch):
    fast_seen, plain_seen = {}, {}
    with monkeypatch.context() as m:
        _recorded_train(m, fast_seen)
        fast = train_sft(*load_plain(tiny_dir), samples, strategy=strategy, output_dir=tmp_path / "fast",
                         training=_cfg(grad_accum=2))
    with monkeypatch.context() as m:
        _walk_every_parameter(m)
        _recorded_train(m, plain_seen)
        plain = train_sft(*load_plain(tiny_dir), samples, strategy=strategy, output_dir=tmp_path / "plain",
                          training=_cfg(grad_accum=2))
    assert fast.losses == plain.losses  # bit for bit: the same ops on the same tensors
    assert fast_seen["norms"] == plain_seen["norms"] and len(fast_seen["norms"]) == 5
    assert max(fast_seen["norms"]) > 1.0  # clipping (at the default 1.0) did act
    assert fast_seen["flos"] == plain_seen["flos"] > 0
    # the walks were skipped (DoRA's train() still runs: it clears a cache), and the model's own methods
    # are back after train()
    assert fast_seen["patched"] == (["zero_grad"] if strategy.startswith("dora") else ["train", "zero_grad"])
    assert plain_seen["patched"] == []
    assert fast_seen["left_patched"] == []
    assert fast_seen["grads"] == [] == plain_seen["grads"]  # zeroed (set to None) after the last step


def test_train_is_skipped_only_when_it_would_change_nothing(tiny_llava):
    import functools

    model, _ = tiny_llava
    calls = []
    real = model.train
    modules = list(model.modules())
    model.train = functools.partial(trainer_mod._train_unless_training, modules,
                                    lambda mode=True: calls.append(mode) or real(mode))
    try:
        model.train()
        assert calls == [True] and all(m.training for m in modules)
        model.train()
        assert calls == [True]  # nothing to change: skipped
        modules[-1].eval()  # one module switched off behind the model's back (an eval helper, say)
        model.train()
        assert calls == [True, True] and all(m.training for m in modules)
        model.eval()  # eval() goes through train(False), never skipped
        assert calls == [True, True, False] and not any(m.training for m in modules)
    finally:
        del model.train


def test_dora_keeps_the_trainers_train_call(tiny_dir):
    from mmtune.models import resolve_groups
    from mmtune.strategies import apply_strategy

    model, _ = load_plain(tiny_dir)
    dora, _ = apply_strategy(model, "dora(r=4, alpha=8, groups=llm)", resolve_groups(model))

    class Probe:
        _patched: list = []
        _zero_trainable_grads = None

    trainer_mod.SFTTrainer._skip_parameter_walks(Probe, dora)
    try:
        # DoRA's train() clears its weight-norm cache, so it must still run every step
        assert [name for _, name in Probe._patched] == ["zero_grad"]
    finally:
        for m, name in Probe._patched:
            delattr(m, name)


def test_the_step_log_is_flushed_each_step_and_synced_with_checkpoints(samples, tiny_dir, tmp_path, monkeypatch):
    import os

    from mmtune import files

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    result = train_sft(*load_plain(tiny_dir), samples, strategy="lora(r=4, alpha=8, groups=llm)",
                       output_dir=tmp_path / "run", training=_cfg(max_steps=4, save_steps=2))
    losses_file = str((tmp_path / "run" / "losses.jsonl").resolve())
    assert len(result.losses) == 4
    # one sync per checkpoint (steps 2 and 4) and one at the end, not one per step
    assert synced.count(losses_file) == 3


def test_the_libraries_objects_are_frozen_once_and_later_garbage_is_still_collected():
    import gc
    import weakref

    assert gc.get_freeze_count() > 100_000  # torch, transformers, peft... imported with the trainer module

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle created after the freeze
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    assert alive() is None
