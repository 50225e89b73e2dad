"""The job's steps, one composite PTransform each, in the order the graph applies them.

Pure rules (no Beam, no I/O) are in ``transforms/rules/``; the HTTP side of delivery is in
``transforms/delivery/``.

The steps are imported when first asked for (``from transforms import ParseEvents``), not with
the package: the delivery process imports ``transforms.delivery`` only, and so starts without
importing Beam.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transforms.consent_filter import ConsentFilter as ConsentFilter
    from transforms.count_per_minute import CountPerMinute as CountPerMinute
    from transforms.deliver import DeliverToWoopra as DeliverToWoopra
    from transforms.enrich_identity import EnrichIdentity as EnrichIdentity
    from transforms.map_to_woopra import MapToWoopra as MapToWoopra
    from transforms.parse_events import ParseEvents as ParseEvents
    from transforms.read_events import ReadEvents as ReadEvents
    from transforms.read_pubsub import ReadPubSubEvents as ReadPubSubEvents
    from transforms.select_to_send import SelectToSend as SelectToSend
    from transforms.write_dead_letters import WriteDeadLetters as WriteDeadLetters

_MODULES = {
    "ReadEvents": "read_events",
    "ReadPubSubEvents": "read_pubsub",
    "ParseEvents": "parse_events",
    "ConsentFilter": "consent_filter",
    "EnrichIdentity": "enrich_identity",
    "SelectToSend": "select_to_send",
    "MapToWoopra": "map_to_woopra",
    "DeliverToWoopra": "deliver",
    "WriteDeadLetters": "write_dead_letters",
    "CountPerMinute": "count_per_minute",
}
__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'transforms' has no attribute {name!r}")
    return getattr(importlib.import_module(f"transforms.{_MODULES[name]}"), name)
