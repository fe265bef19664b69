"""The one progress bar of the package: a live bar on a terminal, a few plain lines in a log.

:func:`progress_bar` gives ``tqdm.auto``'s bar where a person watches (a terminal, a notebook)
and, where standard error is a file or a pipe (a log, CI), a bar that writes one line per update
at most every :data:`LOG_INTERVAL` seconds and one final line, never a ``\\r`` redraw.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm.auto import tqdm as _auto_bar
from tqdm.std import tqdm

__all__ = ["LOG_INTERVAL", "LOG_WIDTH", "progress_bar"]

#: Seconds between two lines of a bar written into a log.
LOG_INTERVAL = 30.0
#: Characters of one line of a bar written into a log (the bar adapts its width to it).
LOG_WIDTH = 100


class _LogBar(tqdm):
    r"""A ``tqdm`` bar for files that are not terminals: each display is a line of its own.

    ``tqdm`` redraws a bar in place with ``\r``; a log file keeps every redraw, and the
    ``set_postfix`` after each ``update`` of a fit loop redraws a second time. This bar writes a
    whole line per display, lets only the rate-limited display of ``update`` write (postfix and
    description changes show on the next line) and writes the final state once on ``close``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._printed_n: float | None = None
        # ``close`` writes the final line itself; tqdm's own would repeat it
        super().__init__(*args, **kwargs, leave=False)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        r"""Writes ``msg`` (default: the bar's state) as one line; an empty ``msg`` writes
        nothing, since a log has nothing to clear."""
        text = self.__str__() if msg is None else msg
        if not text:
            return False
        self.fp.write(text + "\n")
        getattr(self.fp, "flush", lambda: None)()
        self._printed_n = self.n
        return True

    def clear(self, nolock: bool = False) -> None:
        r"""Nothing to clear: the lines already written stay in the log."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        r"""Stores the postfix for the next line instead of writing a line now."""
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        r"""Stores the postfix text for the next line instead of writing a line now."""
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        r"""Stores the description for the next line instead of writing a line now."""
        super().set_description(desc, refresh=False)

    def close(self) -> None:
        r"""Writes the final state (unless the last line showed it already) and closes."""
        if not getattr(self, "disable", True) and self._printed_n != self.n:
            # the final line reports the overall rate, not the recent average
            self._ema_dt = lambda: None
            self.display()
        super().close()


def _is_terminal(file: IO[str] | None) -> bool:
    r"""Whether ``file`` (None: standard error) is a terminal; closed or odd streams are not."""
    stream = sys.stderr if file is None else file
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _in_notebook() -> bool:
    r"""Whether standard error is shown in a Jupyter notebook: ``tqdm.auto`` chose its widget,
    or the stream is the kernel's, whose output cell redraws a ``\r`` line in place."""
    widget = any(cls.__module__ == "tqdm.notebook" for cls in _auto_bar.__mro__)
    return widget or type(sys.stderr).__module__.startswith("ipykernel")


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    enabled: bool = True,
    initial: float = 0,
    unit: str = "it",
    file: IO[str] | None = None,
) -> tqdm:
    r"""
    A progress bar that suits where its text goes: ``tqdm.auto``'s live bar on a terminal or in
    a notebook; where standard error is not a terminal (a log file, CI), a bar that writes one
    plain line at most every :data:`LOG_INTERVAL` seconds plus a final line, so each step's
    state appears at most once in the log.

    Args:

        iterable (Iterable, optional): What to iterate over with progress shown, as for
                    ``tqdm(iterable)``; None for a bar advanced with ``update()``.
                    Default: None
        total (float, optional): The number of steps (default: ``len(iterable)`` when it has
                    one). Default: None
        desc (str, optional): The label written before the bar. Default: None
        enabled (bool, optional): False gives a bar that writes nothing (for example on every
                    rank but the first). Default: True
        initial (float, optional): The steps already done (a resumed fit). Default: 0
        unit (str, optional): The name of one step. Default: ``"it"``
        file (IO, optional): Where the bar writes; None: standard error. Default: None

    Returns:
        *tqdm*: the bar, to use as ``tqdm``'s (a context manager, an iterator when
        ``iterable`` is given, ``update``, ``set_postfix``).

    Examples::

        >>> from captum_netinv._progress import progress_bar
        >>> with progress_bar(total=3, desc="steps", enabled=False) as bar:
        ...     for _ in range(3):
        ...         bar.update()
    """
    if not enabled:
        return tqdm(iterable, total=total, initial=initial, disable=True)
    if (file is None and _in_notebook()) or _is_terminal(file):
        return _auto_bar(iterable, total=total, desc=desc, initial=initial, unit=unit, file=file)
    return _LogBar(
        iterable,
        total=total,
        desc=desc,
        initial=initial,
        unit=unit,
        file=file if file is not None else sys.stderr,
        mininterval=LOG_INTERVAL,
        # a fixed step count per check turns off tqdm's monitor thread, which would
        # otherwise force a line every ``maxinterval`` seconds
        miniters=1,
        ncols=LOG_WIDTH,
        ascii=True,
    )
