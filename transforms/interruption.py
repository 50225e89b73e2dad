"""Stopping a local batch run early (Ctrl-C, SIGTERM): one flag the launcher sets and Deliver reads.

Once the flag is set, Read stops reading, Deliver sends nothing more and gives the requests in flight
``GRACE_SECONDS`` to be answered; what was answered ends as usual (delivered, or a dead letter),
and every other event of the run is left without an outcome: the summary counts those as not
processed (docs/operations.md#stopping-a-run). Only runners that run the steps in the launcher's
process see the flag.
"""

from __future__ import annotations

import threading
import time

GRACE_SECONDS = 3.0  # how long requests already sent may still be answered after the stop

_stop = threading.Event()
_stopped_at = 0.0
_input_cut_short = threading.Event()


def request_stop() -> None:
    """Ask the run to stop: called from the launcher's signal handler."""
    global _stopped_at
    if not _stop.is_set():
        _stopped_at = time.monotonic()
        _stop.set()


def stop_requested() -> bool:
    """True once the run was asked to stop."""
    return _stop.is_set()


def grace_left() -> float:
    """Seconds the requests in flight may still wait for their answer (0 when past)."""
    return max(0.0, GRACE_SECONDS - (time.monotonic() - _stopped_at)) if _stop.is_set() else GRACE_SECONDS


def note_input_cut_short() -> None:
    """Record that reading stopped before the end of the input (Read, once the run was asked to stop)."""
    _input_cut_short.set()


def input_cut_short() -> bool:
    """True when some of the input was left unread because of the stop."""
    return _input_cut_short.is_set()


def reset() -> None:
    """Forget a stop (a process that runs a second job, such as a test)."""
    _stop.clear()
    _input_cut_short.clear()
