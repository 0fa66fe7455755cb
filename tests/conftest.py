"""Shared test set-up: everything offline, small thread counts, mmtune's cache in a temp dir."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_mmtune_home(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's ~/.cache/mmtune."""
    if "MMTUNE_TEST_SHARED_HOME" in os.environ:
        monkeypatch.setenv("MMTUNE_HOME", os.environ["MMTUNE_TEST_SHARED_HOME"])
    else:
        monkeypatch.setenv("MMTUNE_HOME", str(tmp_path_factory.getbasetemp() / "mmtune_home"))


@pytest.fixture(autouse=True)
def _quiet_machine_for_cpu_threads(monkeypatch):
    """``training.cpu_threads: auto`` samples the machine's load for 0.1 s before each training run; the
    suite trains hundreds of times, so its runs take the quiet-machine answer (every core, as torch
    would) without the wait. tests/recipes/test_recipes_threads.py tests the measurement itself."""
    from mmtune.recipes import threads

    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
