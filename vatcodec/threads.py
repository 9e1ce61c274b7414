"""How many torch threads a command uses: the cores that are free now, unless the user says otherwise.

torch starts one worker thread per core, and its parallel regions wait for the slowest thread. When another
process holds a core, the thread on that core runs a fraction of the time and every region waits for it:
measured on the 2-core machine beside one busy process, an effort-3 encode with 2 threads took 3.4x its idle
time, and 1.5-1.9x with one thread per free core (docs/performance.md, "Under load").

Order of precedence: an explicit `--threads N`; then OMP_NUM_THREADS, as for any OpenMP program; then the free
cores: those this process may run on (`os.sched_getaffinity`) less the other processes running right now
(Linux's count of runnable tasks in /proc/loadavg, the least of five readings over 20 ms), at least 1, divided
among `jobs` worker processes.
"""

from __future__ import annotations

import contextlib
import os

from vatcodec.errors import VatError


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def running_elsewhere(samples: int = 5, interval_s: float = 0.004) -> int:
    """Other processes (and threads) on a CPU or waiting for one; 0 where this cannot be known.

    The count is instantaneous, so a short-lived task (a kernel worker, a shell) can appear in one reading; a
    busy competitor appears in all of them. The minimum of a few readings over ~20 ms keeps only the latter.
    """
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # less this process, reading it
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(interval_s)
    return max(0, min(counts))


def free_cores() -> int:
    """Usable cores less the ones other processes are running on now; at least 1."""
    return max(1, usable_cores() - running_elsewhere())


def choose_threads(requested: int | None = None, jobs: int = 1) -> int:
    """The number of torch threads for one process of a command with `jobs` worker processes.

    Raises:
        VatError: `requested` or OMP_NUM_THREADS is not a positive integer.
    """
    if requested is not None:
        if requested < 1:
            raise VatError(f"--threads must be >= 1, got {requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise VatError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    return max(1, free_cores() // max(1, jobs))


def use_threads(requested: int | None = None, jobs: int = 1) -> int:
    """Sets torch's intra-op thread count by `choose_threads` and returns it."""
    n = choose_threads(requested, jobs)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def one_thread():
    """Run a block on one torch thread, then restore the count.

    Encoding's bytes must not depend on the machine's thread count. Matrix products split over threads may sum
    in another order; one thread for the one encoder pass (a small part of an encode) settles it.
    """
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)
