"""Send a batch through a sender and wait for every outcome, in input order (tests only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def send_all(sender: Any, batch: Iterable[Any]) -> list[Any]:
    """Submit every request, then wait for each outcome: the requests are in flight together."""
    return [future.result() for future in [sender.submit(request) for request in batch]]
