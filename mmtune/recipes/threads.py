"""How many threads a CPU training run uses (``training.cpu_threads``).

Measured with ``benchmarks/thread_policy.py`` on the 2-core CI machine (tiny LLaVA, LoRA): on a quiet
machine two threads train as fast as one (1.03x), but beside one other busy process they fall to
0.32x of one thread (OpenMP's spinning threads fight the other job for its core), and
``OMP_WAIT_POLICY=PASSIVE`` costs half the speed when quiet (0.47x). A larger model (the world base)
gains 1.3x from the second core when it is free. So ``auto`` takes the cores no other process is
using when training starts: all of them on a quiet machine, fewer beside other jobs, never fewer than
one. An ``OMP_NUM_THREADS`` set in the environment is the user's choice and is kept.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

AUTO = "auto"
PROC_STAT = "/proc/stat"


def check_cpu_threads(value: int | str | None) -> None:
    if value is None or value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ValueError(f"training.cpu_threads={value!r}: give auto (the cores no other process is using), a number "
                     ">= 1, or null (torch's own count)")


def _cpu_times(path: str = PROC_STAT) -> tuple[int, int, int]:
    """(busy, total, logical CPUs) jiffies from the kernel's counters since boot."""
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    fields = [int(x) for x in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total, cpus


def busy_cores(interval: float = 0.1, read: Callable[[], tuple[int, int, int]] = _cpu_times) -> float:
    """Cores' worth of CPU the machine spent over ``interval`` seconds, while this process slept: the
    other processes' load. 0.0 where the counters cannot be read."""
    try:
        busy0, total0, cpus = read()
        time.sleep(interval)
        busy1, total1, _ = read()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return cpus * (busy1 - busy0) / (total1 - total0)


def auto_threads(available: int, busy: float) -> int:
    """Threads for a run that may use ``available`` threads while others keep ``busy`` cores busy."""
    return max(1, min(available, available - round(busy)))


@contextlib.contextmanager
def cpu_threads(setting: int | str | None, on_cpu: bool, log: Callable[[str], None] = print,
                measure: Callable[[], float] | None = None) -> Iterator[int | None]:
    """Run the block with ``setting``'s thread count on a CPU (yields it; None: torch's left as it was),
    and give torch its earlier count back afterwards."""
    import torch

    if not on_cpu or setting is None or (setting == AUTO and os.environ.get("OMP_NUM_THREADS")):
        yield None
        return
    before = torch.get_num_threads()
    if setting == AUTO:
        busy = (measure or busy_cores)()
        threads = auto_threads(before, busy)
        if threads != before:
            log(f"training on {threads} CPU thread(s), not {before}: other processes keep {busy:.1f} core(s) busy "
                "(training.cpu_threads: auto; set a number to choose)")
    else:
        threads = int(setting)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
