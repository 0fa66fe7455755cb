"""`mmtune bench --workers N`: the same run JSONs as the serial bench, failures named, kills resumed;
and the worker count and environment worked out on this CPU for a GPU machine too."""
import contextlib
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmtune.bench import parallel
from mmtune.bench.grid import BenchConfig, load_bench_config
from mmtune.cli import main
from mmtune.config import ConfigError
from tests.bench.test_bench_e2e import _argv, _mme, _pope, _scienceqa

# Two targets, so a merge row waits for both targets' source runs and WiSE-FT for one.
ROWS = "last;last+wise_ft(alpha=0.5);last+merge(method=ties, density=0.5)"
RUN_IDS = {"scienceqa__last__seed0", "mme__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0",
           "mme__last_wise_ft_alpha=0.5__seed0", "scienceqa__last_merge_method=ties_density=0.5__seed0",
           "mme__last_merge_method=ties_density=0.5__seed0"}
# What a run's machine and timing decide; every score, per-sample score, loss and setting must match.
MEASURED = {"train_seconds", "peak_memory_mb"}


def _two_targets(fx: Path, out: Path, mme_train: Path | None = None) -> list[str]:
    sqa, mme, pope = fx / "scienceqa", fx / "mme", fx / "pope"
    return _argv(fx, out) + [
        "--strategies", ROWS,
        "--set", (f"targets=[{{name: scienceqa, task: scienceqa, task_args: {{root: {sqa}}}, "
                  f"train: {sqa}/train.json, root: {sqa}}}, {{name: mme, task: mme, task_args: {{root: {mme}}}, "
                  f"metric: accuracy, train: {mme_train or mme / 'train.json'}, root: {mme}}}]"),
        "--set", f"seen=[{{name: pope, task: pope, task_args: {{root: {pope}}}, metric: accuracy}}]",
    ]


def _runs(out: Path) -> dict[str, dict]:
    return {p.stem: {k: v for k, v in json.loads(p.read_text()).items() if k not in MEASURED}
            for p in (out / "runs").glob("*.json")}


def _weights(out: Path) -> dict[str, str]:
    """The tuned weights kept for posterior rows, by file: the bytes' hash (bit-identical training or not)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (out / "work").rglob("*.safetensors")}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The fixture data and tiny model of the e2e bench test, and the serial bench's runs on them."""
    from mmtune.models.tiny import save_tiny

    fx = tmp_path_factory.mktemp("fixture")
    _scienceqa(fx / "scienceqa")
    _mme(fx / "mme")
    _pope(fx / "pope")
    save_tiny("llava", fx / "model")
    out = fx / "serial"
    assert main(_two_targets(fx, out) + ["--workers", "1"]) == 0  # the presets' default is auto
    runs, weights = _runs(out), _weights(out)
    assert set(runs) == RUN_IDS and len(weights) == 2  # the two "last" runs' weights
    return fx, runs, weights


@pytest.mark.slow
def test_two_workers_give_the_serial_runs(serial, tmp_path, capsys):
    fx, expected, weights = serial
    out = tmp_path / "parallel"
    assert main(_two_targets(fx, out) + ["--workers", "2"]) == 0
    assert _runs(out) == expected  # scores, per-sample scores, final losses, settings
    assert _weights(out) == weights
    printed = capsys.readouterr().out
    assert "6 runs on 2 worker processes, one thread each" in printed
    finished = [line for line in printed.splitlines() if " E " in line and ", worker " in line]
    assert len(finished) == len(RUN_IDS)  # one progress line per run, naming its worker
    assert {line.rsplit("worker ", 1)[1].rstrip(")") for line in finished} <= {"1", "2"}
    # Each work item's output went to its own log file, not the terminal.
    assert {p.stem for p in (out / "logs").glob("*.log")} == {
        "scienceqa__last__seed0", "mme__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0",
        "mme__last_wise_ft_alpha=0.5__seed0", "merged__last_merge_method=ties_density=0.5__seed0"}
    assert (out / "report.md").exists()


@pytest.mark.slow
def test_a_failed_run_is_named_the_others_are_kept_and_a_rerun_resumes(serial, tmp_path, capsys):
    fx, expected, _ = serial
    out, missing = tmp_path / "failing", tmp_path / "mme_train.json"
    argv = _two_targets(fx, out, mme_train=missing) + ["--workers", "2"]
    assert main(argv) == 2  # mme's training records are missing: its runs fail, scienceqa's go on
    captured = capsys.readouterr()
    assert "mme | last | seed 0: FAILED in a worker" in captured.out
    assert "1 run(s) failed: mme__last__seed0; not started, their sources failed: " in captured.out
    assert str(missing) in captured.err
    assert set(_runs(out)) == {"scienceqa__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0"}
    for run_id in ("scienceqa__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0"):
        assert _runs(out)[run_id]["E"] == expected[run_id]["E"]

    missing.write_text((fx / "mme" / "train.json").read_text())
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 2
    assert "4 runs on 2 worker processes" in printed
    resumed = _runs(out)
    assert set(resumed) == RUN_IDS
    for run_id, record in resumed.items():  # the same scores as the serial bench (the mme path aside)
        assert {k: v for k, v in record.items() if k != "settings"} == {
            k: v for k, v in expected[run_id].items() if k != "settings"}


def _started(argv: list[str], stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``mmtune`` in its own session, so that it and its workers can be killed together."""
    return subprocess.Popen([sys.executable, "-m", "mmtune.cli", *argv], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)


def _wait_for_runs(bench: subprocess.Popen, out: Path, more_than: int) -> None:
    deadline = time.monotonic() + 300
    while len(list((out / "runs").glob("*.json"))) <= more_than and bench.poll() is None:
        assert time.monotonic() < deadline, "the bench wrote no run in 5 minutes"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_worker_or_bench_leaves_whole_run_files_and_resumes(serial, tmp_path):
    import psutil

    fx, expected, weights = serial
    out = tmp_path / "killed"
    argv = _two_targets(fx, out) + ["--workers", "2"]
    # One worker killed mid-run (as the out-of-memory killer would): the bench stops and says so.
    bench = _started(argv, stderr=subprocess.PIPE)
    try:
        _wait_for_runs(bench, out, more_than=0)
        workers = [p for p in psutil.Process(bench.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        workers[0].kill()
        _, err = bench.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.pid, signal.SIGKILL)
    assert bench.returncode == 2 and "a bench worker process died (killed, out of memory" in err
    first = _runs(out)  # every run file left is whole JSON
    assert first and set(first) < RUN_IDS
    # The whole bench killed mid-run: the parent and its workers at once.
    bench = _started(argv)
    try:
        _wait_for_runs(bench, out, more_than=len(first))
    finally:
        os.killpg(bench.pid, signal.SIGKILL)
        bench.wait()
    assert set(_runs(out)) <= RUN_IDS
    assert main(argv) == 0
    assert _runs(out) == expected and _weights(out) == weights


def test_workers_setting_is_checked():
    assert load_bench_config(overrides=["workers=auto"]).workers == "auto"
    assert load_bench_config(overrides=["workers=3"]).workers == 3
    assert BenchConfig(targets=["iconqa"], seen=["vqa"], strategies=["full"]).workers == 1  # serial unless asked
    assert load_bench_config().workers == "auto"  # the presets ask: one process per core
    for bad in ("0", "two", "true", "-1"):
        with pytest.raises(ConfigError, match="workers=.*number of worker processes >= 1, or auto"):
            load_bench_config(overrides=[f"workers={bad}"])


def test_auto_is_one_worker_per_gpu_else_per_physical_core(monkeypatch, tmp_path):
    # Four logical CPUs on two cores (two hyper-threads each): two physical cores.
    for cpu, core in enumerate([0, 0, 1, 1]):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(parallel, "SYSFS_CPU", tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert parallel.physical_cores() == 2
    assert parallel.resolve_workers("auto", gpus=[]) == 2
    assert parallel.resolve_workers("auto", gpus=["0", "1", "2"]) == 3
    assert parallel.resolve_workers(5, gpus=[]) == 5
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4})  # cpu4 has no topology files
    assert parallel.physical_cores() == 5


def test_worker_environment_on_cpu_and_on_gpus(monkeypatch):
    assert parallel.worker_env(1, workers=2, gpus=[], cores=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # On GPUs each worker gets one device (round robin past the last) and a share of the cores.
    envs = [parallel.worker_env(slot, workers=3, gpus=["4", "6"], cores=16) for slot in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "6", "4"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"5"}

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert parallel.visible_gpus() == ["3", "5"]  # the parent's own devices, not 0 and 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert parallel.visible_gpus() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parallel.visible_gpus() == []


def test_auto_runs_a_checkpoint_folder_serially_on_a_cpu(monkeypatch, tmp_path):
    # Every worker holds its own copy of the model: auto parallelises the built-in base, not a user's checkpoint.
    from mmtune.bench import parallel
    from mmtune.bench.runner import Bench

    monkeypatch.setattr(parallel, "visible_gpus", lambda: [])
    monkeypatch.setattr(parallel, "resolve_workers", lambda workers, gpus: 2)
    grid = dict(targets=["iconqa"], seen=["vqa"], strategies=["full"])
    assert Bench(BenchConfig(model=str(tmp_path), workers="auto", **grid)).workers(5) == (1, [])
    assert Bench(BenchConfig(model=str(tmp_path), workers=2, **grid)).workers(5) == (2, [])
    assert Bench(BenchConfig(workers="auto", **grid), base_path=tmp_path).workers(5) == (2, [])
    monkeypatch.setattr(parallel, "visible_gpus", lambda: ["0", "1"])
    assert Bench(BenchConfig(model=str(tmp_path), workers="auto", **grid)).workers(5) == (2, ["0", "1"])


def test_the_longest_runs_start_first(tmp_path):
    from mmtune.bench.runner import Bench

    config = load_bench_config(overrides=[f"model={tmp_path}", "strategies=[last, last+wise_ft(alpha=0.5)]",
                                          "seen=[vqa]", "targets=[iconqa, {name: refcoco, max_steps: 400}]"])
    bench = Bench(config, log=lambda _: None)
    items = bench.plan()
    steps = {item.run_id: parallel.training_steps(bench, item) for item in items}
    assert steps == {"iconqa__last__seed0": 160, "refcoco__last__seed0": 400,  # the quick preset's budgets
                     "iconqa__last_wise_ft_alpha=0.5__seed0": 0, "refcoco__last_wise_ft_alpha=0.5__seed0": 0}
    assert [i.run_id for i in parallel.longest_first(bench, items)] == [
        "refcoco__last__seed0", "iconqa__last__seed0",
        "iconqa__last_wise_ft_alpha=0.5__seed0", "refcoco__last_wise_ft_alpha=0.5__seed0"]


# -- the Dask executor: the same loop on a Dask cluster (a local one here; across machines in use) -------------
def _finished_order(printed: str) -> list[str]:
    """The runs' progress lines in the order they finished, as 'target | row'."""
    lines = [line.split("] ", 1)[1] for line in printed.splitlines() if " E " in line and ", worker " in line]
    return [line.split(": ", 1)[1].split(" E ", 1)[0] + " | " + line.split(" | ")[1] for line in lines]


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_serial_runs(serial, tmp_path, capsys):
    pytest.importorskip("distributed")
    fx, expected, weights = serial
    out = tmp_path / "dask"
    assert main(_two_targets(fx, out) + ["--workers", "2", "--executor", "dask"]) == 0
    assert _runs(out) == expected  # scores, per-sample scores, final losses, settings
    assert _weights(out) == weights
    printed = capsys.readouterr().out
    assert "6 runs on 2 worker(s) of a local Dask cluster, one thread each" in printed
    order = _finished_order(printed)
    assert len(order) == len(RUN_IDS)
    # A posterior row started only once its sources had finished: WiSE-FT after its target's run, the merge
    # after both targets' runs.
    for target in ("scienceqa", "mme"):
        assert order.index(f"{target} | last") < order.index(f"{target} | last+wise_ft(alpha=0.5)")
        assert order.index(f"{target} | last") < order.index(f"{target} | last+merge(method=ties, density=0.5)")
    workers = {line.rsplit("worker ", 1)[1].rstrip(")") for line in printed.splitlines() if ", worker " in line}
    assert workers <= {"1", "2"}
    assert {p.stem for p in (out / "logs").glob("*.log")} == {
        "scienceqa__last__seed0", "mme__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0",
        "mme__last_wise_ft_alpha=0.5__seed0", "merged__last_merge_method=ties_density=0.5__seed0"}


@pytest.fixture(scope="module")
def dask_cluster():
    """A running Dask cluster of two single-threaded workers, reached by its address like a remote one; a
    worker that dies fails its run at once (no retry on another worker)."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_on_a_dask_scheduler_a_failed_run_is_named_the_others_are_kept_and_a_rerun_resumes(
        serial, dask_cluster, tmp_path, capsys):
    fx, expected, _ = serial
    cluster, client = dask_cluster
    client.wait_for_workers(2)
    out, missing = tmp_path / "failing", tmp_path / "mme_train.json"
    argv = _two_targets(fx, out, mme_train=missing) + ["--executor", "dask", "--scheduler", cluster.scheduler_address]
    assert main(argv) == 2  # mme's training records are missing: its runs fail, scienceqa's go on
    captured = capsys.readouterr()
    assert f"6 runs on 2 worker(s) of the Dask cluster at {cluster.scheduler_address}" in captured.out
    assert "mme | last | seed 0: FAILED in a worker" in captured.out
    assert "1 run(s) failed: mme__last__seed0; not started, their sources failed: " in captured.out
    assert str(missing) in captured.err
    assert set(_runs(out)) == {"scienceqa__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0"}

    missing.write_text((fx / "mme" / "train.json").read_text())
    assert main(argv) == 0  # the same workers, set up anew for this run of the bench
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 2
    assert "4 runs on 2 worker(s) of the Dask cluster" in printed
    for run_id, record in _runs(out).items():  # the same scores as the serial bench (the mme path aside)
        assert {k: v for k, v in record.items() if k != "settings"} == {
            k: v for k, v in expected[run_id].items() if k != "settings"}
    assert set(_runs(out)) == RUN_IDS


@pytest.mark.slow
def test_a_dask_worker_that_dies_stops_the_bench_with_the_runs_it_had(dask_cluster, tmp_path):
    from mmtune.bench.runner import Bench

    cluster, client = dask_cluster
    client.wait_for_workers(2)
    config = load_bench_config(overrides=[f"model={tmp_path}", "strategies=[last, last+wise_ft(alpha=0.5)]",
                                          "seen=[vqa]", "targets=[iconqa, refcoco]"])
    bench, logged = Bench(config, log=lambda _: None), []
    executor = client.get_executor(pure=False)
    import distributed

    # The first run's worker exits (as if killed); its future fails with KilledWorker.
    with pytest.raises(parallel.WorkerDied, match=r"a Dask worker died \(killed, out of memory.*while running "
                                                   r"(iconqa|refcoco)__last__seed0.*rerun the same command to resume"):
        parallel.schedule(bench, bench.plan(), executor, lambda pool, item: pool.submit(os._exit, 1),
                          lambda *a: logged.append(a), died=parallel._dask_died(distributed),
                          stop=lambda: executor.shutdown(wait=False))
    assert logged == []


def test_executor_and_scheduler_settings_are_checked(monkeypatch):
    assert load_bench_config().executor == "process" and load_bench_config().scheduler == ""
    if importlib.util.find_spec("distributed") is not None:
        config = load_bench_config(overrides=["executor=dask", "scheduler=tcp://10.0.0.1:8786"])
        assert (config.executor, config.scheduler) == ("dask", "tcp://10.0.0.1:8786")
    with pytest.raises(ConfigError, match="executor='ray': give process .* or dask"):
        load_bench_config(overrides=["executor=ray"])
    with pytest.raises(ConfigError, match="scheduler='tcp://h:8786' is a Dask scheduler's address: set executor=dask"):
        load_bench_config(overrides=["scheduler=tcp://h:8786"])
    with pytest.raises(ConfigError, match="scheduler='a host': give a Dask scheduler's address, e.g. tcp://host:8786"):
        load_bench_config(overrides=["executor=dask", "scheduler=a host"])
    # Without Dask installed, asking for it says what to install, before the base model is built.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ConfigError, match=r'executor=dask needs .*pip install -e "\.\[dask\]"'):
        load_bench_config(overrides=["executor=dask"])
