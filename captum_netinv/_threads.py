"""A cheap check at the start of a fit that torch's threads fit the CPU cores free right now.

:func:`warn_if_oversubscribed` compares ``torch.get_num_threads()`` with the cores this process
may use minus the load of other work and warns once per process; ``docs/threads.md`` explains.
"""

from __future__ import annotations

import os
import warnings

import torch

__all__ = ["THREADS_DOC", "cores_and_load", "free_cores", "warn_if_oversubscribed"]

#: Where the advice on threads and processes lives.
THREADS_DOC = "docs/threads.md"

#: Whether this process has warned already (the check warns once per process).
_warned = False


def cores_and_load() -> tuple[int, float] | None:
    r"""
    The CPU cores this process may run on (``os.sched_getaffinity``) and the 1-minute load
    average (``os.getloadavg``): two cheap system calls.

    Returns:
        *tuple[int, float]* or None: the two numbers; None where the platform gives no
        affinity or load average (Windows, macOS).
    """
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "getloadavg"):
        return None
    try:
        return len(os.sched_getaffinity(0)), os.getloadavg()[0]
    except OSError:
        return None


def free_cores(cores: int, load: float, own_threads: int) -> int:
    r"""
    The cores free for this process right now: ``cores`` minus the load of other work, rounded,
    at least 1. The load average counts this process's own recent work too (up to
    ``own_threads`` busy threads), so that much of it is not held against the process: a fit
    that loaded the machine itself is never told that the machine is busy.

    Args:
        cores (int): The cores the process may run on.
        load (float): The 1-minute load average (runnable threads of every process).
        own_threads (int): This process's intra-op threads, the most of the load it can make.

    Returns:
        *int*: the estimate.
    """
    others = max(0.0, load - own_threads)
    return max(1, round(cores - others))


def warn_if_oversubscribed() -> None:
    r"""
    Warns (``UserWarning``, once per process) when torch runs more intra-op threads than the
    cores free right now (:func:`free_cores`): the threads then wait for each other and a fit can
    run many times slower. The load this process itself can make (its threads) is discounted,
    so a warning means other work holds the cores. With one thread there is nothing to lower and
    nothing is said; where
    the platform gives no load average the check is skipped.

    Examples::

        >>> from captum_netinv._threads import warn_if_oversubscribed
        >>> warn_if_oversubscribed()  # at the start of a fit
    """
    global _warned
    threads = torch.get_num_threads()
    if _warned or threads <= 1:
        return
    measured = cores_and_load()
    if measured is None:
        return
    cores, load = measured
    free = free_cores(cores, load, own_threads=threads)
    if threads <= free:
        return
    _warned = True
    warnings.warn(
        f"torch uses {threads} threads but only about {free} CPU core(s) are free of other "
        f"work right now ({cores} usable, 1-minute load average {load:.1f}); oversubscribed "
        f"threads can make the fit many times slower. Call torch.set_num_threads({free}) "
        f"before the fit, or set OMP_NUM_THREADS per process (see {THREADS_DOC}, "
        "'Threads and processes on CPUs').",
        UserWarning,
        stacklevel=3,
    )
