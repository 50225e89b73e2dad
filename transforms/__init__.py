"""The job's steps, one composite PTransform each, in the order the graph applies them.

Pure rules (no Beam, no I/O) are in ``transforms/rules/``; the HTTP side of delivery is in
``transforms/delivery/``.
"""

from transforms.consent_filter import ConsentFilter
from transforms.count_per_minute import CountPerMinute
from transforms.deliver import DeliverToWoopra
from transforms.enrich_identity import EnrichIdentity
from transforms.map_to_woopra import MapToWoopra
from transforms.parse_events import ParseEvents
from transforms.read_events import ReadEvents
from transforms.read_pubsub import ReadPubSubEvents
from transforms.select_to_send import SelectToSend
from transforms.write_dead_letters import WriteDeadLetters

__all__ = [
    "ReadEvents",
    "ReadPubSubEvents",
    "ParseEvents",
    "ConsentFilter",
    "EnrichIdentity",
    "SelectToSend",
    "MapToWoopra",
    "DeliverToWoopra",
    "WriteDeadLetters",
    "CountPerMinute",
]
