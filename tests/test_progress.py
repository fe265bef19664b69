"""The package's progress bar: a live bar on terminals, each step at most once in a log file.

A log is a ``StringIO`` (not a terminal); the truth is the bar's own "k/total" counts, read back.
"""

from __future__ import annotations

import io
import re
import sys

import pytest

from captum_netinv import _progress
from captum_netinv._progress import progress_bar

STEPS = 50


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fit_loop(log: io.StringIO, *, enabled: bool = True) -> None:
    r"""What the fit loop does per step: ``update`` then ``set_postfix``."""
    with progress_bar(total=STEPS, desc="fit", enabled=enabled, file=log) as bar:
        for step in range(STEPS):
            bar.update()
            bar.set_postfix(loss=f"{step:.3f}")


def _counts(text: str) -> list[int]:
    return [int(found) for found in re.findall(rf"(\d+)/{STEPS}\b", text)]


def test_a_log_gets_few_plain_lines_and_a_final_one() -> None:
    log = io.StringIO()
    _fit_loop(log)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # the first display and the final line; the 30 s interval is never reached
    assert len(lines) <= 3
    assert _counts(lines[-1]) == [STEPS] and "loss=49.000" in lines[-1]


def test_each_step_is_written_at_most_once_even_without_a_rate_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_progress, "LOG_INTERVAL", 0.0)
    log = io.StringIO()
    _fit_loop(log)
    counts = _counts(log.getvalue())
    assert len(counts) == len(set(counts))
    assert counts[-1] == STEPS and len(log.getvalue().splitlines()) <= STEPS + 1


def test_an_iterated_bar_counts_every_item_once_in_a_log() -> None:
    log = io.StringIO()
    assert list(progress_bar(range(STEPS), desc="batches", file=log)) == list(range(STEPS))
    counts = _counts(log.getvalue())
    assert counts[-1] == STEPS and len(counts) == len(set(counts))


def test_a_resumed_bar_starts_from_initial() -> None:
    log = io.StringIO()
    with progress_bar(total=STEPS, initial=40, desc="fit", file=log) as bar:
        bar.update(10)
    assert _counts(log.getvalue()) == [40, STEPS]


def test_a_disabled_bar_writes_nothing() -> None:
    log = io.StringIO()
    _fit_loop(log, enabled=False)
    assert list(progress_bar(range(3), file=log, enabled=False)) == [0, 1, 2]
    assert log.getvalue() == ""


def test_a_terminal_gets_the_live_bar() -> None:
    terminal = _Terminal()
    with progress_bar(total=STEPS, file=terminal) as bar:
        assert not isinstance(bar, _progress._LogBar)
        bar.update(STEPS)
    assert "\r" in terminal.getvalue()


def test_standard_error_redirected_to_a_file_gets_few_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    with progress_bar(total=STEPS, desc="fit") as bar:
        assert isinstance(bar, _progress._LogBar)
        bar.update(STEPS)
    text = log.getvalue()
    assert "\r" not in text and len(text.splitlines()) <= 2
    assert _counts(text) == [0, STEPS]


def test_a_jupyter_kernel_stream_gets_the_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    monkeypatch.setattr(sys, "stderr", kernel_stream)
    with progress_bar(total=STEPS) as bar:
        assert not isinstance(bar, _progress._LogBar)
