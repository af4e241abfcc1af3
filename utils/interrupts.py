"""Ctrl-C during a long grid: stop at a safe point with the state saved, not in mid-write.

Inside :func:`stop_at_safe_points` the first Ctrl-C (SIGINT) only sets a flag. The work polls it
at its safe points: the training snapshots (``utils.resume``, ``utils.engine_xla``) through
:func:`save_then_stop_if_requested`, which saves the epoch just finished first, and the grid
between two runs through :func:`raise_if_stop_requested`. A run (or the xla engine's pack)
whose last epoch is done is not stopped but finished, so that its rows are logged before the
grid's safe point. The ``KeyboardInterrupt`` raised there makes the scripts exit with code 130
(``utils.cli``), and the next start resumes from the saved state. A second Ctrl-C interrupts at
once, as usual; the files are still never half-written (``utils.atomic_files``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_MESSAGE = ("stopped after Ctrl-C; the state of the run was saved: run the same command "
                "again to continue")

_stop_requested = threading.Event()


@contextlib.contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """While active, a first Ctrl-C (SIGINT) only asks the work to stop at its next safe point
    (:func:`raise_if_stop_requested`: the end of an epoch, after a snapshot, or between two
    runs); a second one interrupts at once. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame):
        if _stop_requested.is_set():
            raise KeyboardInterrupt  # asked twice: the user does not want to wait
        _stop_requested.set()
        print("\nCtrl-C: stopping after this epoch (press again to stop at once)", flush=True)

    _stop_requested.clear()
    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop_requested.clear()


def raise_if_stop_requested() -> None:
    """A safe point: raise ``KeyboardInterrupt`` (scripts exit 130) if Ctrl-C was pressed."""
    if _stop_requested.is_set():
        raise KeyboardInterrupt(STOP_MESSAGE)


def save_then_stop_if_requested(save: Callable[[], None], save_due: bool) -> None:
    """A safe point with a snapshot: call ``save`` when ``save_due`` or Ctrl-C was pressed, then
    raise ``KeyboardInterrupt`` if it was. The flag is read once, so a Ctrl-C arriving between
    the two steps waits for the next safe point instead of stopping without this save."""
    stopping = _stop_requested.is_set()
    if save_due or stopping:
        save()
    if stopping:
        raise KeyboardInterrupt(STOP_MESSAGE)
