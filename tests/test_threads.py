"""The fit-start check of torch's threads against the CPU cores free right now.

The cores, the load average and torch's thread count are set by hand; the truth is the arithmetic
``cores - (load - own threads)`` written out in each test.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from captum_netinv import _threads
from captum_netinv._threads import cores_and_load, free_cores, warn_if_oversubscribed


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    r"""A fresh process's state (not warned yet) on a machine of 8 usable cores."""
    monkeypatch.setattr(_threads, "_warned", False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    return monkeypatch


def _situation(machine: pytest.MonkeyPatch, *, threads: int, load: float) -> None:
    machine.setattr(os, "getloadavg", lambda: (load, load, load), raising=False)
    machine.setattr(torch, "get_num_threads", lambda: threads)


def test_free_cores_are_usable_cores_minus_other_load_rounded_at_least_one() -> None:
    assert free_cores(8, 3.2, own_threads=1) == 6  # 8 - (3.2 - 1)
    assert free_cores(8, 7.6, own_threads=2) == 2  # 8 - (7.6 - 2)
    assert free_cores(2, 7.0, own_threads=2) == 1
    assert free_cores(2, 2.0, own_threads=2) == 2  # the process's own load: the cores are its


def test_a_process_that_loaded_the_machine_itself_is_not_warned(
    machine: pytest.MonkeyPatch,
) -> None:
    _situation(machine, threads=8, load=7.5)  # all of it may be this process's own
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_oversubscribed()


def test_it_warns_when_threads_exceed_the_free_cores(machine: pytest.MonkeyPatch) -> None:
    _situation(machine, threads=8, load=14.0)  # 8 - (14 - 8) = 2 cores free
    with pytest.warns(UserWarning, match=r"8 threads.*about 2 CPU.*8 usable.*load average 14\.0"):
        warn_if_oversubscribed()


def test_the_warning_gives_the_setting_and_the_page(machine: pytest.MonkeyPatch) -> None:
    _situation(machine, threads=4, load=11.0)  # 8 - (11 - 4) = 1 core free
    with pytest.warns(UserWarning, match=r"torch\.set_num_threads\(1\).*docs/threads\.md"):
        warn_if_oversubscribed()


@pytest.mark.parametrize(("threads", "load"), [(4, 0.3), (6, 8.0), (1, 30.0)])
def test_it_is_silent_when_the_threads_fit(
    machine: pytest.MonkeyPatch, threads: int, load: float
) -> None:
    _situation(machine, threads=threads, load=load)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_oversubscribed()


def test_it_warns_once_per_process(machine: pytest.MonkeyPatch) -> None:
    _situation(machine, threads=8, load=16.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warn_if_oversubscribed()
    assert len(caught) == 1


def test_it_is_skipped_without_a_load_average(machine: pytest.MonkeyPatch) -> None:
    _situation(machine, threads=8, load=8.0)
    machine.delattr(os, "getloadavg")
    assert cores_and_load() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_oversubscribed()


def test_a_fit_runs_the_check(machine: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    machine.setattr(
        "captum_netinv.inversion.base.warn_if_oversubscribed", lambda: calls.append(None)
    )
    from captum_netinv import NetworkInversion
    from captum_netinv.examples.models import MLP

    inversion = NetworkInversion(MLP())
    inversion.fit(torch.zeros(2, 1, 28, 28), steps=1, batch_size=2, progress=False, seed=0)
    assert calls == [None]
