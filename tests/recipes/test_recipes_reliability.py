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


# ---- kill at random ------------------------------------------------------------------------------

def _child(tiny: Path, out: Path, strategy: str, resume: bool, signal_fd: int) -> None:
    """One training process: writes b"s" to ``signal_fd`` as each checkpoint write starts, b"e" as it ends."""
    torch.set_num_threads(1)  # as DataLoader workers do: a forked child must not reuse the parent's pool
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


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 1024)
    except BlockingIOError:
        return b""


def _wait_for_save(proc, fd: int, nth: int, seen: bytearray) -> None:
    while seen.count(b"s") < nth and proc.is_alive():
        seen += _drain(fd)
        time.sleep(0.0005)


def _final_losses(out: Path) -> list[float]:
    return json.loads((out / "final" / "mmtune.json").read_text())["meta"]["losses"]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("strategy", [STRATEGY, "lora(r=4, alpha=8, groups=llm)"])
def test_sigkill_at_random_moments_always_resumes_to_identical_losses(complete_run, tmp_path, strategy):
    tiny = complete_run[0].parent / "tiny"
    kills = int(os.environ.get("MMTUNE_KILL_SOAK", "4"))
    rng = random.Random(os.environ.get("MMTUNE_KILL_SEED", "0"))

    start = time.perf_counter()
    proc, fd = _start(tiny, tmp_path / "baseline", strategy, resume=False)
    proc.join()
    os.close(fd)
    run_seconds = time.perf_counter() - start
    assert proc.exitcode == 0
    expected = _final_losses(tmp_path / "baseline")

    out, killed, mid_save = tmp_path / "run", 0, 0
    for i in range(kills):
        proc, fd = _start(tiny, out, strategy, resume=i > 0)
        seen = bytearray()
        if i % 2:  # half the kills land inside a checkpoint write: after its start, before its end
            _wait_for_save(proc, fd, rng.randint(1, STEPS), seen)
            time.sleep(rng.uniform(0, 0.05))
        else:
            time.sleep(rng.uniform(0, run_seconds))
        if proc.is_alive():
            proc.kill()
            killed += 1
        proc.join()
        seen += _drain(fd)
        os.close(fd)
        mid_save += proc.exitcode == -9 and seen.endswith(b"s")
        broken = {c.name: checkpoint_problem(c) for c in out.glob("checkpoint-*") if checkpoint_problem(c)}
        assert not broken, f"kill {i} left half-written checkpoints: {broken}"

    proc, fd = _start(tiny, out, strategy, resume=True)
    proc.join()
    os.close(fd)
    assert proc.exitcode == 0
    print(f"{strategy}: {killed} of {kills} runs SIGKILLed, {mid_save} inside a checkpoint write; "
          f"losses identical after resume")
    assert _final_losses(out) == expected
    assert len(expected) == STEPS


# ---- divergence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["lr", "epochs", "warmup_ratio", "weight_decay", "l2sp", "divergence_factor"])
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
