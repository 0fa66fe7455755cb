"""training.cpu_threads: auto takes the cores other processes leave free, a number is taken as given,
an OMP_NUM_THREADS in the environment is kept, and torch gets its own count back after training."""
from __future__ import annotations

import pytest
import torch

from mmtune.recipes import threads as threads_mod
from mmtune.recipes.sft import TrainingConfig, train_sft, training_settings
from mmtune.recipes.threads import auto_threads, busy_cores, check_cpu_threads, cpu_threads
from tests.recipes.conftest import load_plain

STAT = """cpu  {user} 0 {system} {idle} 0 0 0 0 0 0
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 1
"""


def test_busy_cores_from_the_kernels_counters(tmp_path):
    stat = tmp_path / "stat"
    reads = iter([(100, 50, 1000), (100 + 150, 50 + 50, 1000 + 200)])  # +200 busy, +200 idle jiffies: half of 2 CPUs

    def read():
        user, system, idle = next(reads)
        stat.write_text(STAT.format(user=user, system=system, idle=idle))
        return threads_mod._cpu_times(str(stat))

    assert busy_cores(interval=0.0, read=read) == pytest.approx(1.0)


def test_busy_cores_where_nothing_can_be_read():
    def broken():
        raise OSError("no /proc here")

    assert busy_cores(interval=0.0, read=broken) == 0.0


@pytest.mark.parametrize(("available", "busy", "expected"),
                         [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 3.5, 1), (8, 2.2, 6), (1, 0.0, 1)])
def test_auto_takes_the_free_cores_never_fewer_than_one(available, busy, expected):
    assert auto_threads(available, busy) == expected


@pytest.mark.parametrize("bad", [0, -1, "all", 1.5, True])
def test_bad_settings_are_refused_naming_the_option(bad):
    with pytest.raises(ValueError, match="training.cpu_threads"):
        check_cpu_threads(bad)
    with pytest.raises(ValueError, match="training.cpu_threads"):
        TrainingConfig(cpu_threads=bad)


def test_the_block_runs_on_the_chosen_count_and_torch_gets_its_own_back(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    said = []
    try:
        torch.set_num_threads(2)
        with cpu_threads("auto", True, log=said.append, measure=lambda: 1.0) as n:
            assert n == torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2 and "1.0 core(s) busy" in said[0]
        with cpu_threads(3, True, log=said.append) as n:
            assert n == torch.get_num_threads() == 3
        assert torch.get_num_threads() == 2
        with cpu_threads("auto", True, log=said.append, measure=lambda: 0.0) as n:
            assert n == 2 and len(said) == 1  # quiet: every core, nothing to say
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        with cpu_threads("auto", True, measure=lambda: 1.0) as n:  # the user's own setting wins
            assert n is None and torch.get_num_threads() == 2
        with cpu_threads("auto", False, measure=lambda: 1.0) as n:  # not on a CPU: untouched
            assert n is None
    finally:
        torch.set_num_threads(before)


def test_training_runs_on_the_policys_threads(samples, tiny_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_mod, "busy_cores", lambda: 5.0)  # a busy machine
    seen = []
    from mmtune.recipes import trainer as trainer_mod

    real_step = trainer_mod.SFTTrainer.training_step
    monkeypatch.setattr(trainer_mod.SFTTrainer, "training_step",
                        lambda self, *a, **k: seen.append(torch.get_num_threads()) or real_step(self, *a, **k))
    before = torch.get_num_threads()
    cfg = TrainingConfig(max_steps=2, batch_size=3, save_steps=0, logging_steps=1, report_to=["none"])
    try:
        torch.set_num_threads(2)
        train_sft(*load_plain(tiny_dir), samples, strategy="lora(r=4, alpha=8, groups=llm)",
                  output_dir=tmp_path / "run", training=cfg)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    # where a run is executed is not part of what its result depends on (bench runs still match)
    assert "cpu_threads" not in training_settings(cfg)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/stat"), reason="no /proc/stat on this system")
def test_this_machines_counters_read_as_a_load_within_its_cores():
    import os

    busy, total, cpus = threads_mod._cpu_times()
    assert 0 < busy < total and cpus == os.cpu_count()
    assert 0.0 <= busy_cores(interval=0.05) <= cpus
