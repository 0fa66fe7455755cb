"""The bench's runs in worker processes: one torch thread each on a CPU, one GPU each on a GPU machine.

A bench's (target, row, seed) runs are independent, so N workers finish about N times sooner when
there are N cores or GPUs. The executor is the standard library's process pool (spawned, so each
worker starts its own torch with its own thread count and CUDA device); a posterior row is handed to
it once the runs whose weights it reuses are finished. Each worker writes its run's JSON atomically,
so a killed parallel bench resumes like a serial one.

Across machines the executor is Dask's (``executor: dask``, ``pip install -e ".[dask]"``): the same loop
(``schedule``) hands the runs to a Dask cluster's workers, a local one of ``workers`` processes, or the
one at ``scheduler``. Its workers write the run JSONs and logs under the bench's ``--out`` and read the
base checkpoint under ``MMTUNE_HOME``, so both must be on a filesystem every worker sees (shared NFS, same
path), and every machine needs the same mmtune and torch. To start one::

    dask scheduler                                        # on one machine: tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1 --nworkers N # on each machine (one per core, or per GPU)
    mmtune bench --executor dask --scheduler tcp://HOST:8786
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import multiprocessing
import os
import pickle
import re
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmtune.config import ConfigError

if TYPE_CHECKING:  # the runner imports torch; this module must not, before a worker sets its threads
    from mmtune.bench.runner import Bench, PlanItem, Scored

AUTO = "auto"
PROCESS, DASK = "process", "dask"  # the executors: this machine's process pool, or a Dask cluster
EXECUTORS = (PROCESS, DASK)
ADDRESS = re.compile(r"([a-z]+://)?[^\s/:]+(:\d+)?")  # what Client() takes: tcp://host:8786, host:8786, tls://...
DASK_MISSING = ("bench config: executor=dask needs Dask's distributed package: pip install -e \".[dask]\" in mmtune's "
                "clone (or pip install distributed)")
LOGS_DIR = "logs"  # a worker's training and evaluation output, one file per run
SYSFS_CPU = Path("/sys/devices/system/cpu")  # cpu<N>/topology says which core a logical CPU belongs to


class WorkerDied(OSError):
    """A worker process ended without a result (killed, out of memory, or it could not start)."""


def check_workers(value: int | str) -> None:
    """``value`` must be a count >= 1 or ``auto``."""
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ConfigError(f"bench config: workers={value!r}: give a number of worker processes >= 1, or auto "
                     "(one per physical core on a CPU, one per GPU)")


def check_executor(executor: str, scheduler: str) -> None:
    """``executor`` is ``process`` or ``dask``; ``scheduler`` a Dask scheduler's address (dask only), or empty."""
    if executor not in EXECUTORS:
        raise ConfigError(f"bench config: executor={executor!r}: give process (worker processes on this machine, "
                          "the default) or dask (a Dask cluster: a local one, or the one at scheduler)")
    if not isinstance(scheduler, str) or (scheduler and not ADDRESS.fullmatch(scheduler)):
        raise ConfigError(f"bench config: scheduler={scheduler!r}: give a Dask scheduler's address, e.g. "
                          "tcp://host:8786, or leave it empty for a local cluster of `workers` processes")
    if scheduler and executor != DASK:
        raise ConfigError(f"bench config: scheduler={scheduler!r} is a Dask scheduler's address: set executor=dask "
                          "too (--executor dask)")
    if executor == DASK and importlib.util.find_spec("distributed") is None:
        raise ConfigError(DASK_MISSING)


def physical_cores() -> int:
    """Physical cores this process may run on; hyper-threads of one core count once (they share its units)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = SYSFS_CPU / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:  # no sysfs topology (containers, other systems): every allowed CPU counts
            return len(cpus)
    return len(cores)


def visible_gpus() -> list[str]:
    """The ids to put in a worker's CUDA_VISIBLE_DEVICES: the parent's own list if it set one."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def resolve_workers(value: int | str, gpus: list[str]) -> int:
    """``auto``: one worker per GPU, else one per physical core; a number is taken as given."""
    check_workers(value)
    if value == AUTO:
        return len(gpus) or physical_cores()
    return int(value)


def worker_env(slot: int, workers: int, gpus: list[str], cores: int) -> dict[str, str]:
    """Environment of worker ``slot``: on a CPU one thread (N single-threaded runs beat one N-threaded
    run at this size and never oversubscribe the cores); on GPUs its own device and a share of the cores."""
    threads = max(1, cores // workers) if gpus else 1
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


# -- inside a worker -------------------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _start_worker(slots: Any, workers: int, gpus: list[str], cores: int, bench_blob: bytes) -> None:
    """Set the thread count and device before torch is imported here, then rebuild the parent's bench."""
    slot = slots.get()
    env = worker_env(slot, workers, gpus, cores)
    os.environ.update(env)
    import torch

    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    _rebuild(bench_blob, slot + 1)


def _rebuild(bench_blob: bytes, number: int | str) -> None:
    """This worker's copy of the parent's bench, from the blob the parent pickled for this bench."""
    from mmtune.bench.runner import Bench

    config, base_path, base = pickle.loads(bench_blob)  # written by this bench's parent process just now
    _worker.update(number=number, bench=Bench(config, log=lambda _: None, base_path=base_path), base=base)


def _execute_on_dask(bench_blob: bytes, digest: str, env: dict[str, str], gpus: list[str], label: str, seed: int,
                     target_names: list[str]) -> tuple[int | str, list[dict[str, Any]], float]:
    """One plan item on a Dask worker: a long-lived process not started by this bench, so the first item of
    a bench in it sets it up (threads and device before torch is imported, the bench rebuilt); an item of
    another bench (another blob) rebuilds."""
    if _worker.get("digest") != digest:
        from distributed import get_worker

        name = get_worker().name  # a LocalCluster's workers are 0..N-1; a dask worker's is its --name or address
        env = dict(env)
        if gpus and isinstance(name, int):
            env["CUDA_VISIBLE_DEVICES"] = gpus[name % len(gpus)]
        if "torch" not in sys.modules:  # torch reads them when it starts; a worker reused keeps its first ones
            os.environ.update(env)
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
        _rebuild(bench_blob, name + 1 if isinstance(name, int) else name)
        _worker["digest"] = digest
    return _execute(label, seed, target_names)


def _forget(digest: str) -> None:
    """Drop a finished bench's state from a long-lived (Dask) worker."""
    if _worker.get("digest") == digest:
        _worker.clear()


def _execute(label: str, seed: int, target_names: list[str]) -> tuple[int | str, list[dict[str, Any]], float]:
    """One plan item in this worker; its output goes to a log file, its records to their run JSONs."""
    bench: Bench = _worker["bench"]
    row, targets = bench.by_label[label], [t for t in bench.config.targets if t.name in target_names]
    log = bench.out / LOGS_DIR / f"{bench.item_id(row, seed, targets)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        records = bench.execute(row, seed, targets, _worker["base"])
    return _worker["number"], [{k: r[k] for k in ("target", "E", "F", "O")} for r in records], time.perf_counter() - start


# -- in the parent ---------------------------------------------------------------------------------
def longest_first(bench: Bench, items) -> list[PlanItem]:
    """``items`` in the order to hand them out: most training steps first (plan order among equals).

    The last runs left for the workers are then short ones, so no worker waits long for another to
    finish (longest-processing-time-first); results do not depend on the order.
    """
    return sorted(items, key=lambda item: -training_steps(bench, item))


def training_steps(bench: Bench, item: PlanItem) -> int:
    """What an item costs, near enough to order by: its optimizer steps (none for a posterior row)."""
    if not item.row.trains:
        return 0
    return sum(bench.config.training_for(item.row, item.seed, t).max_steps for t in item.targets)


def run_parallel(bench: Bench, items: list[PlanItem], base: Scored, workers: int, gpus: list[str],
                 report: Callable[[PlanItem, list[dict[str, Any]], float, int | str], None]) -> None:
    """Run ``items`` on ``workers`` processes of this machine, each posterior item once its sources are finished.

    A failed run is reported with its id and the others go on; the first failure is raised at the end.
    """
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    blob = pickle.dumps((bench.config, bench.base_path, base))
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, workers, gpus, physical_cores(), blob))

    def submit(pool: Executor, item: PlanItem) -> Future:
        return pool.submit(_execute, item.row.label, item.seed, [t.name for t in item.targets])

    def stop() -> None:  # interrupted, or a worker died: stop the others now, not after their runs
        processes = list((executor._processes or {}).values())  # no public way to stop them before Python 3.14
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()

    try:
        schedule(bench, items, executor, submit, report, died=_process_died, stop=stop)
    finally:
        executor.shutdown()  # at once after stop(); else once the last run is reported


def run_dask(bench: Bench, items: list[PlanItem], base: Scored, workers: int, gpus: list[str], scheduler: str,
             report: Callable[[PlanItem, list[dict[str, Any]], float, int | str], None]) -> None:
    """Run ``items`` on the Dask cluster at ``scheduler``, or (empty) on a local cluster of ``workers``
    single-threaded processes; the same loop, failures and resume as ``run_parallel``.

    On an interrupt or a lost worker the runs not started are cancelled and a local cluster is closed (its
    processes end); on a remote cluster a run already started finishes (a worker thread cannot be stopped)
    and writes its run JSON, which a rerun then skips.
    """
    try:
        import distributed
    except ImportError as e:
        raise ConfigError(DASK_MISSING) from e
    cluster = None
    env = worker_env(0, workers, gpus, physical_cores()) if not scheduler else {}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # one device each: set by the worker's index, in _execute_on_dask
    if not scheduler:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=env,
                                           dashboard_address=None, memory_limit=0)  # no limit, as in the process pool
    blob = pickle.dumps((bench.config, bench.base_path, base))
    # The key a worker's setup is kept under: this bench's blob, and this run of it (a rerun of the same
    # command rebuilds, so no state of the run before, e.g. a training set read then, is reused).
    digest = f"{hashlib.sha256(blob).hexdigest()}-{uuid.uuid4().hex}"
    try:
        client = distributed.Client(cluster or scheduler)
        try:
            count = len(client.nthreads())  # the workers connected now
            if not count:
                raise WorkerDied(f"the Dask scheduler at {scheduler} has no workers: start them on each machine "
                                 f"with: dask worker {scheduler} --nthreads 1 --nworkers N")
            where = f"the Dask cluster at {scheduler}" if scheduler else "a local Dask cluster"
            threads = f"on GPUs {','.join(gpus)}" if gpus else "one thread each" if not scheduler else \
                "each worker's OMP_NUM_THREADS threads"
            bench.log(f"{sum(len(i.targets) for i in items)} runs on {count} worker(s) of {where}, {threads}; "
                      f"each run's output in {bench.out / LOGS_DIR}")
            sent = client.scatter(blob, broadcast=True)  # once to every worker, not once per run
            executor = client.get_executor(pure=False)  # pure=False: never a cached result of an earlier bench

            def submit(pool: Executor, item: PlanItem) -> Future:
                return pool.submit(_execute_on_dask, sent, digest, env, gpus, item.row.label, item.seed,
                                   [t.name for t in item.targets])

            schedule(bench, items, executor, submit, report, died=_dask_died(distributed),
                     stop=lambda: executor.shutdown(wait=False))  # cancels the runs not finished
        finally:
            if scheduler:  # the cluster's workers live on: drop this bench's model and data in them
                with contextlib.suppress(Exception):
                    client.run(_forget, digest)
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _dask_died(distributed: Any) -> Callable[[Future], str | None]:
    """A Dask future lost with its worker: KilledWorker (the scheduler gave up after the worker running it
    died ``distributed.scheduler.allowed-failures`` times), or cancelled (the scheduler was lost)."""
    from concurrent.futures import CancelledError

    def died(future: Future) -> str | None:
        if future.cancelled() or isinstance(future.exception(), CancelledError):
            return "the Dask scheduler cancelled a run (it or the client lost the connection)"
        if isinstance(future.exception(), distributed.KilledWorker):
            return "a Dask worker died (killed, out of memory, or it could not start)"
        return None

    return died


def _process_died(future: Future) -> str | None:
    error = None if future.cancelled() else future.exception()
    return "a bench worker process died (killed, out of memory, or it could not start)" \
        if isinstance(error, BrokenProcessPool) else None


def schedule(bench: Bench, items: list[PlanItem], executor: Executor, submit: Callable[[Executor, PlanItem], Future],
             report: Callable[[PlanItem, list[dict[str, Any]], float, int | str], None], *,
             died: Callable[[Future], str | None], stop: Callable[[], None]) -> None:
    """Hand ``items`` to ``executor`` (longest first, a posterior item once its sources are finished) and
    report each finished one; the loop both executors share.

    ``submit(executor, item)`` returns the future of ``_execute``'s result for ``item``; ``died(future)``
    says how a future's worker was lost (None: it was not), which stops the bench; ``stop()`` stops the
    executor's work at once (on an interrupt or a lost worker). A failed run is reported with its id and
    the others go on; the first failure is raised at the end.
    """
    waiting = {item.key: item for item in items}
    unfinished = set(waiting)  # items not done yet; a posterior item waits for its sources among them
    failed: list[tuple[PlanItem, BaseException]] = []
    running: dict[Future, PlanItem] = {}
    try:
        while waiting or running:
            for item in longest_first(bench, waiting.values()):
                if unfinished.isdisjoint(item.sources):
                    del waiting[item.key]
                    running[submit(executor, item)] = item
            if not running:  # what is left waits for failed runs
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                lost = died(future)
                if lost is not None:
                    in_flight = ", ".join(i.run_id for i in [item, *running.values()])
                    raise WorkerDied(f"{lost} while running {in_flight}; finished runs are kept: rerun the same "
                                     "command to resume (with fewer --workers if memory ran out)") \
                        from (None if future.cancelled() else future.exception())
                error = future.exception()
                if error is not None:
                    failed.append((item, error))
                    bench.log(f"{item.where}: FAILED in a worker: {error} "
                              f"(its output: {bench.out / LOGS_DIR / (item.run_id + '.log')})")
                    continue
                unfinished.discard(item.key)
                number, summaries, seconds = future.result()
                report(item, summaries, seconds, number)
    except BaseException:
        stop()
        raise
    if failed:
        skipped = [i.run_id for i in waiting.values()]
        bench.log(f"{len(failed)} run(s) failed: {', '.join(i.run_id for i, _ in failed)}"
                  + (f"; not started, their sources failed: {', '.join(skipped)}" if skipped else "")
                  + ". Finished runs are kept; fix the cause and rerun the same command to resume.")
        raise failed[0][1]
