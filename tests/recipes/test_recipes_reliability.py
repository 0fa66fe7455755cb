"""Nothing lost, nothing silently wrong: checkpoints survive kills and full disks, divergence stops a run.

The kill test forks a training process and SIGKILLs it at random moments, some of them timed to
land inside a checkpoint write, then resumes until the run completes; its losses must equal an
uninterrupted run's bit for bit. ``MMTUNE_KILL_SOAK=<kills>`` runs a longer soak.
"""
from __future__ import annotations

import errno
import json
import math
import multiprocessing
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from mmtune.recipes import trainer as trainer_mod
from mmtune.recipes.checkpoints import STAGING_DIR, checkpoint_problem, last_complete_checkpoint
from mmtune.recipes.divergence import TrainingDiverged
from mmtune.recipes.sft import TrainingConfig, train_sft
from tests.recipes.conftest import load_plain, make_samples, write_messages_jsonl

STEPS = 6
STRATEGY = "top(k=1)+projector"


def _cfg(**kw) -> TrainingConfig:
    base = {"lr": 1e-2, "max_steps": STEPS, "batch_size": 2, "logging_steps": 1, "save_steps": 1, "seed": 0,
            "warmup_ratio": 0.0}
    return TrainingConfig(**{**base, **kw})


def _train(tiny_dir: Path, out: Path, strategy: str = STRATEGY, resume: bool = False, **kw):
    return train_sft(*load_plain(tiny_dir), make_samples(8), strategy=strategy, output_dir=out,
                     training=_cfg(**kw), resume=resume)


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("checkpoint-*"))


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> tuple[Path, list[float]]:
    """A finished 6-step run with a checkpoint after every step, and its losses."""
    from mmtune.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("reliability")
    tiny = save_tiny("llava", root / "tiny", seed=0)
    result = _train(tiny, root / "run")
    return root / "run", result.losses


# ---- checkpoints: completeness, half-written ones, full disk ---------------------------------------

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGES = {
    "no trainer_state.json": (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"),
    "cut trainer_state.json": (lambda c: _truncate(c / "trainer_state.json"), "not valid JSON"),
    "cut model.safetensors": (lambda c: _truncate(c / "model.safetensors"), "model.safetensors"),
    "cut safetensors header": (lambda c: _truncate(c / "model.safetensors", 0.00001), "model.safetensors"),
    "empty optimizer.pt": (lambda c: (c / "optimizer.pt").write_bytes(b""), "optimizer.pt"),
    "cut rng_state.pth": (lambda c: _truncate(c / "rng_state.pth", 0.9), "rng_state.pth"),
    "no weights": (lambda c: (c / "model.safetensors").unlink(), "no model weights"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_checkpoint_problem_names_what_is_missing_or_cut(complete_run, tmp_path, damage):
    run, _ = complete_run
    ckpt = shutil.copytree(run / "checkpoint-3", tmp_path / "checkpoint-3")
    assert checkpoint_problem(ckpt) is None
    harm, expected = DAMAGES[damage]
    harm(ckpt)
    assert expected in checkpoint_problem(ckpt)


def test_resume_skips_half_written_checkpoints_names_them_and_matches(complete_run, tmp_path, caplog):
    """Two newest checkpoints half-written (as a kill left them before writes were staged): resume from
    the third newest, replace the broken ones, and end with the uninterrupted run's losses."""
    run, losses = complete_run
    out = shutil.copytree(run, tmp_path / "run")
    shutil.rmtree(out / "final")
    (out / "checkpoint-6" / "trainer_state.json").unlink()
    _truncate(out / "checkpoint-5" / "model.safetensors")
    assert last_complete_checkpoint(out)[0] == out / "checkpoint-4"

    resumed = _train(run.parent / "tiny", out, resume=True)
    assert resumed.losses == losses
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert any("checkpoint-6" in m and "trainer_state.json is missing" in m for m in skipped)
    assert any("checkpoint-5" in m and "model.safetensors" in m for m in skipped)
    assert all(checkpoint_problem(c) is None for c in out.glob("checkpoint-*"))  # both were rewritten whole


def test_resume_from_the_last_steps_checkpoint_trains_no_step_past_max_steps(complete_run, tmp_path):
    """A kill while final/ was being written leaves checkpoint-6 of 6: resume only writes final/."""
    run, losses = complete_run
    out = shutil.copytree(run, tmp_path / "run")
    shutil.rmtree(out / "final")
    resumed = _train(run.parent / "tiny", out, resume=True)
    assert resumed.losses == losses and _checkpoints(out)[-1] == f"checkpoint-{STEPS}"
    assert json.loads((out / "final" / "mmtune.json").read_text())["meta"]["steps"] == STEPS


def test_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_completes(complete_run, tmp_path,
                                                                                   monkeypatch):
    run, losses = complete_run
    tiny = run.parent / "tiny"
    real = trainer_mod.SFTTrainer._save_rng_state

    def disk_full_at_step_3(self, output_dir):
        if self.state.global_step == 3:  # model, optimizer and scheduler already written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, output_dir)

    monkeypatch.setattr(trainer_mod.SFTTrainer, "_save_rng_state", disk_full_at_step_3)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left on device") as err:
        _train(tiny, out)
    assert err.value.errno == errno.ENOSPC
    assert "checkpoint-3 failed" in str(err.value) and "checkpoint-2 is the last complete" in str(err.value)
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2"]
    assert not any((out / STAGING_DIR).iterdir())  # the partial write was removed, freeing its space
    assert not (out / "final").exists()

    monkeypatch.setattr(trainer_mod.SFTTrainer, "_save_rng_state", real)  # space freed
    assert _train(tiny, out, resume=True).losses == losses


def test_full_disk_while_writing_final_leaves_no_half_model(complete_run, tmp_path, monkeypatch):
    from mmtune.recipes import sft

    run, losses = complete_run
    real = sft.save_tuned

    def disk_full_after_the_weights(model, processor, out_dir, spec, meta):
        real(model, processor, out_dir, spec, meta)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sft, "save_tuned", disk_full_after_the_weights)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="final failed .No space left on device.; the checkpoints are kept"):
        _train(run.parent / "tiny", out)
    assert not (out / "final").exists() and not any((out / STAGING_DIR).iterdir())
    monkeypatch.setattr(sft, "save_tuned", real)
    assert _train(run.parent / "tiny", out, resume=True).losses == losses
    assert _final_losses(out) == losses


# ---- kill at random ------------------------------------------------------------------------------

def _private_progress_lock() -> None:
    """Give this forked process its own tqdm lock. tqdm's default one holds a semaphore shared with
    every fork of the parent: a child SIGKILLed while printing a progress bar would block them all."""
    from tqdm import std

    lock, classes = threading.RLock(), [std.tqdm]
    while classes:
        cls = classes.pop()
        if cls is std.tqdm or "_lock" in vars(cls):
            cls._lock = lock
        classes.extend(cls.__subclasses__())


def _child(tiny: Path, out: Path, strategy: str, resume: bool, signal_fd: int) -> None:
    """One training process: writes b"s" to ``signal_fd`` as each checkpoint write starts, b"e" as it ends."""
    torch.set_num_threads(1)  # as DataLoader workers do: a forked child must not reuse the parent's pool
    _private_progress_lock()
    real = trainer_mod.SFTTrainer._save_checkpoint

    def announced(self, model, trial):
        os.write(signal_fd, b"s")
        real(self, model, trial)
        os.write(signal_fd, b"e")

    trainer_mod.SFTTrainer._save_checkpoint = announced
    _train(tiny, out, strategy, resume=resume)


def _start(tiny: Path, out: Path, strategy: str, resume: bool):
    read_fd, write_fd = os.pipe()
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(tiny, out, strategy, resume, write_fd))
    proc.start()
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return proc, read_fd


def _finish(proc, fd: int, timeout: float = 300) -> None:
    proc.join(timeout)
    os.close(fd)
    if proc.is_alive():
        proc.kill()
        pytest.fail(f"a training process hung for {timeout} s")
    assert proc.exitcode == 0


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 1024)
    except BlockingIOError:
        return b""


def _wait_for_save(proc, fd: int, seen: bytearray) -> None:
    while b"s" not in seen and proc.is_alive():
        seen += _drain(fd)
        time.sleep(0.002)


def _save_seconds(proc, fd: int) -> float:
    """Watch an uninterrupted run: the mean wall time of its checkpoint writes."""
    starts, ends = [], []
    while proc.is_alive():
        for byte in _drain(fd):
            (starts if byte == ord("s") else ends).append(time.perf_counter())
        time.sleep(0.002)
    return sum(e - s for s, e in zip(starts, ends)) / max(len(ends), 1)


def _final_losses(out: Path) -> list[float]:
    return json.loads((out / "final" / "mmtune.json").read_text())["meta"]["losses"]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("strategy", [STRATEGY, "lora(r=4, alpha=8, groups=llm)"])
def test_sigkill_at_random_moments_always_resumes_to_identical_losses(complete_run, tmp_path, strategy):
    """Each attempt resumes the current run and is SIGKILLed: at a random moment, or (every other
    attempt) at a random point inside its first checkpoint write. A run that completes is checked
    against the uninterrupted run's losses and a new one starts; the last is resumed to completion."""
    tiny = complete_run[0].parent / "tiny"
    attempts = int(os.environ.get("MMTUNE_KILL_SOAK", "5"))
    rng = random.Random(os.environ.get("MMTUNE_KILL_SEED", "0"))

    start = time.perf_counter()
    proc, fd = _start(tiny, tmp_path / "baseline", strategy, resume=False)
    save_seconds = _save_seconds(proc, fd)
    _finish(proc, fd)
    run_seconds = time.perf_counter() - start
    expected = _final_losses(tmp_path / "baseline")
    assert len(expected) == STEPS

    runs, killed, mid_save = 0, 0, 0
    for i in range(attempts):
        out = tmp_path / f"run-{runs}"
        proc, fd = _start(tiny, out, strategy, resume=True)
        seen = bytearray()
        if i % 2:
            _wait_for_save(proc, fd, seen)
            time.sleep(rng.uniform(0, save_seconds))
        else:
            time.sleep(rng.uniform(0, run_seconds))
        proc.kill()
        proc.join(300)
        seen += _drain(fd)
        os.close(fd)
        if proc.exitcode == 0:  # it finished before the kill
            assert _final_losses(out) == expected
            runs += 1
            continue
        killed += 1
        mid_save += seen.count(b"s") > seen.count(b"e")
        broken = {c.name: checkpoint_problem(c) for c in out.glob("checkpoint-*") if checkpoint_problem(c)}
        assert not broken, f"kill {i} left half-written checkpoints: {broken}"

    out = tmp_path / f"run-{runs}"
    _finish(*_start(tiny, out, strategy, resume=True))
    assert _final_losses(out) == expected
    print(f"{strategy}: {killed} SIGKILLs in {attempts} attempts ({mid_save} inside a checkpoint write, "
          f"mean write {save_seconds * 1000:.0f} ms); runs resumed to identical losses: {runs + 1}")


# ---- divergence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["lr", "epochs", "warmup_ratio", "weight_decay", "divergence_factor"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_training_floats_must_be_finite(field, value):
    with pytest.raises(ValueError, match=f"training.{field} must be a finite number"):
        TrainingConfig(**{field: value})


def test_lr_must_be_positive_and_group_lr_finite_and_divergence_factor_above_one():
    with pytest.raises(ValueError, match="training.lr must be > 0"):
        TrainingConfig(lr=0.0)
    with pytest.raises(ValueError, match="training.group_lr.projector"):
        TrainingConfig(group_lr={"projector": math.nan})
    with pytest.raises(ValueError, match="training.divergence_factor must be 0 .off. or > 1"):
        TrainingConfig(divergence_factor=0.5)


def test_divergence_rule_by_hand():
    from mmtune.recipes.divergence import divergence_reason

    assert divergence_reason(600.0, 1.0, first_loss=6.0, factor=100) is None  # at the limit 100 x 6
    assert "exceeds training.divergence_factor=100" in divergence_reason(601.0, 1.0, first_loss=6.0, factor=100)
    assert divergence_reason(99.0, 1.0, first_loss=0.01, factor=100) is None  # reference floored at 1.0
    assert divergence_reason(601.0, 1.0, first_loss=6.0, factor=100, penalty=2.0) is None  # task loss 599
    assert divergence_reason(1e9, 1.0, first_loss=6.0, factor=0) is None  # rule off
    assert divergence_reason(1.0, math.inf, first_loss=6.0, factor=0) == "the gradient norm is inf"
    assert divergence_reason(math.nan, 1.0, first_loss=None, factor=100) == "the loss is nan"


def test_lr_nan_from_the_command_line_is_one_line(tiny_dir, tmp_path, capsys):
    from mmtune.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"model: {tiny_dir}\ndata: [{{path: {tmp_path / 'x.jsonl'}}}]\n")
    assert main(["train", str(config), "--set", "training.lr=nan"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training.lr must be a finite number" in err


def test_nan_in_a_base_weight_stops_at_step_1_without_saving(tiny_dir, tmp_path):
    model, processor = load_plain(tiny_dir)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = math.nan
    with pytest.raises(TrainingDiverged, match="diverged at step 1: the loss is nan; no checkpoint was saved"):
        train_sft(model, processor, make_samples(8), strategy="lora(r=4, alpha=8, groups=llm)",
                  output_dir=tmp_path, training=_cfg())
    assert _checkpoints(tmp_path) == [] and not (tmp_path / "final").exists()


class _PoisonAfterSave(TrainerCallback):
    """Sets one trainable weight to inf once checkpoint-``step`` is written: the next step's loss is non-finite."""

    def __init__(self, trainer, step: int) -> None:
        self.trainer, self.step = trainer, step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            weight = next(p for p in self.trainer.model.parameters() if p.requires_grad)
            with torch.no_grad():
                weight.fill_(math.inf)


def test_divergence_mid_run_names_the_step_and_the_last_checkpoint(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod.SFTTrainer, "__init__", _with_callback(trainer_mod.SFTTrainer.__init__))
    with pytest.raises(TrainingDiverged) as err:
        _train(tiny_dir, tmp_path, strategy="projector")
    assert "diverged at step 3" in str(err.value)
    assert f"the last checkpoint before it is {tmp_path / 'checkpoint-2'}" in str(err.value)
    assert _checkpoints(tmp_path) == ["checkpoint-1", "checkpoint-2"] and not (tmp_path / "final").exists()


def _with_callback(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.add_callback(_PoisonAfterSave(self, step=2))
    return patched


def test_lr_1e3_with_full_fires_the_divergence_rule_through_the_cli(tiny_dir, tmp_path, capsys):
    from mmtune.cli import main

    data = write_messages_jsonl(tmp_path / "train.jsonl", make_samples(8, root=tmp_path / "img"))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model: {tiny_dir}\ndata: [{{path: {data}}}]\nstrategy: full\noutput_dir: {tmp_path / 'run'}\n"
        "training: {max_steps: 6, batch_size: 2, save_steps: 1, lr: 1000.0, logging_steps: 1, warmup_ratio: 0.0}\n"
    )
    assert main(["train", str(config)]) == 1
    err = capsys.readouterr().err
    said = [line.partition("mmtune train:")[2] for line in err.splitlines() if "mmtune train:" in line]
    assert "Traceback" not in err and len(said) == 1, err[-600:]  # one line after the progress bars
    assert said[0].startswith(" error: training diverged at step 2: the loss")
    assert "exceeds training.divergence_factor=100 x the first step's loss" in said[0]
    assert f"the last checkpoint before it is {tmp_path / 'run' / 'checkpoint-1'}" in said[0]
    assert not (tmp_path / "run" / "final").exists()
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "run" / "losses.jsonl").read_text().splitlines())]
    assert math.isfinite(losses[0]) and losses[0] < 20
