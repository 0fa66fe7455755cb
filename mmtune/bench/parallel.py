"""The bench's runs in worker processes: one torch thread each on a CPU, one GPU each on a GPU machine.

A bench's (target, row, seed) runs are independent, so N workers finish about N times sooner when
there are N cores or GPUs. The executor is the standard library's process pool (spawned, so each
worker starts its own torch with its own thread count and CUDA device); a posterior row is handed to
it once the runs whose weights it reuses are finished. Each worker writes its run's JSON atomically,
so a killed parallel bench resumes like a serial one. Across machines an existing distributed engine
(e.g. Ray's actor pool) would take the process pool's place; that is not built here.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmtune.config import ConfigError

if TYPE_CHECKING:  # the runner imports torch; this module must not, before a worker sets its threads
    from mmtune.bench.runner import Bench, PlanItem, Scored

AUTO = "auto"
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
    from mmtune.bench.runner import Bench

    config, base_path, base = pickle.loads(bench_blob)  # written by this bench's parent process just now
    _worker.update(number=slot + 1, bench=Bench(config, log=lambda _: None, base_path=base_path), base=base)


def _execute(label: str, seed: int, target_names: list[str]) -> tuple[int, list[dict[str, Any]], float]:
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
                 report: Callable[[PlanItem, list[dict[str, Any]], float, int], None]) -> None:
    """Run ``items`` on ``workers`` processes, each posterior item once its sources are finished.

    A failed run is reported with its id and the others go on; the first failure is raised at the end.
    """
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    blob = pickle.dumps((bench.config, bench.base_path, base))
    waiting = {item.key: item for item in items}
    unfinished = set(waiting)  # items not done yet; a posterior item waits for its sources among them
    failed: list[tuple[PlanItem, BaseException]] = []
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, workers, gpus, physical_cores(), blob))
    running: dict[Future, PlanItem] = {}
    try:
        while waiting or running:
            for item in longest_first(bench, waiting.values()):
                if unfinished.isdisjoint(item.sources):
                    del waiting[item.key]
                    running[executor.submit(_execute, item.row.label, item.seed, [t.name for t in item.targets])] = item
            if not running:  # what is left waits for failed runs
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    in_flight = ", ".join(i.run_id for i in [item, *running.values()])
                    raise WorkerDied(f"a bench worker process died (killed, out of memory, or it could not start) "
                                     f"while running {in_flight}; finished runs are kept: rerun the same command "
                                     "to resume (with fewer --workers if memory ran out)") from error
                if error is not None:
                    failed.append((item, error))
                    bench.log(f"{item.where}: FAILED in a worker: {error} "
                              f"(its output: {bench.out / LOGS_DIR / (item.run_id + '.log')})")
                    continue
                unfinished.discard(item.key)
                number, summaries, seconds = future.result()
                report(item, summaries, seconds, number)
    except BaseException:  # interrupted, or a worker died: stop the others now, not after their runs
        processes = list((executor._processes or {}).values())  # no public way to stop them before Python 3.14
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    executor.shutdown()
    if failed:
        skipped = [i.run_id for i in waiting.values()]
        bench.log(f"{len(failed)} run(s) failed: {', '.join(i.run_id for i, _ in failed)}"
                  + (f"; not started, their sources failed: {', '.join(skipped)}" if skipped else "")
                  + ". Finished runs are kept; fix the cause and rerun the same command to resume.")
        raise failed[0][1]
