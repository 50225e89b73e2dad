"""Every step of the graph says what it emits, in types Beam resolves and picks coders for.

Beam checks each step's input against what the step before it emits, and picks each PCollection's
coder from that type. A step whose type Beam cannot resolve becomes ``Any`` and is never checked;
an ``int`` that holds 128 bits would get Beam's 64-bit integer coder and fail at run time. This
builds the real graphs (batch, both identity joins, a backfill slice with a ledger, a dry run,
streaming) and checks the type of every PCollection the job's own steps produce.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.coders import registry

from pipeline.graph import build_pipeline
from pipeline.launcher import parse_command_line
from tests.conftest import ROOT
from transforms.delivery.import_sender import NotImported
from transforms.delivery.sender import DeliveryOutcome
from transforms.rules.dead_letters import DeadLetter
from transforms.rules.events import Event
from transforms.rules.import_visits import ImportBody, VisitLine
from transforms.rules.woopra_mapping import WoopraRequest

BATCH = ["--input", str(ROOT / "samples" / "events.jsonl"), "--config", str(ROOT / "samples" / "mapping.yaml"),
         "--runner", "FnApiRunner"]
STREAMING = ["--input_subscription", "projects/my-project/subscriptions/events", "--config",
             str(ROOT / "samples" / "mapping.yaml"), "--runner", "BundleBasedDirectRunner", "--streaming"]
GRAPHS = {
    "batch side_input": BATCH,
    "batch shuffle": [*BATCH, "--identity_join", "shuffle"],
    "backfill slice with a ledger": [*BATCH, "--start", "2024-01-01", "--ledger", "LEDGER"],
    "dry run": [*BATCH, "--dry_run", "DRY/"],
    "import sink": [*BATCH, "--sink", "import", "--ledger", "LEDGER"],
    "import sink dry run": [*BATCH, "--sink", "import", "--dry_run", "DRY/"],
    "streaming": STREAMING,
}
# The type each step's outputs must have: (step, output tag) → type.
EXPECTED = {
    ("Parse/Parse", None): Event,
    ("Parse/Parse", "dead_letters"): DeadLetter,
    ("Consent/ApplyConsent", None): Event,
    ("Consent/ApplyConsent", "dead_letters"): DeadLetter,
    ("Identity/LookUpVisitor", None): Event,
    ("Identity/LookUpVisitor", "dead_letters"): DeadLetter,
    ("Identity/EnrichVisitor", None): Event,
    ("Identity/EnrichVisitor", "dead_letters"): DeadLetter,
    ("Identity/CarryTraitsForward", None): Event,
    ("Identity/CarryTraitsForward", "dead_letters"): DeadLetter,
    ("SelectToSend/KeepInSliceNotDelivered", None): Event,
    ("MapToWoopra/BuildRequests", None): WoopraRequest,
    ("MapToWoopra/BuildRequests", "dead_letters"): DeadLetter,
    ("Deliver/Send", None): DeliveryOutcome,
    ("Deliver/Send", "dead_letters"): DeadLetter,
    ("Deliver/CountWouldSend", None): WoopraRequest,
    ("GroupIntoVisits/MapToImportCalls", None): beam.typehints.Tuple[str, bytes],
    ("GroupIntoVisits/MapToImportCalls", "dead_letters"): DeadLetter,
    ("GroupIntoVisits/SplitVisits", None): VisitLine,
    ("GroupIntoVisits/PackBodies", None): ImportBody,
    ("SendImports/Send", None): int,
    ("SendImports/Send", "not_imported"): NotImported,
    ("DeadLetterNotImported/MatchNotImported", None): beam.typehints.Tuple[bytes,
                                                                           beam.typehints.Tuple[int, DeadLetter]],
    ("DeadLetterNotImported/FirstCopy", None): DeadLetter,
    ("SendImports/WriteBodies", None): int,
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # the graph is built, never run
    monkeypatch.setenv("WOOPRA_APP_ID", "app")  # --sink import's Access Keys
    monkeypatch.setenv("WOOPRA_SECRET_KEY", "key")


def output_types(argv: list[str]) -> dict[tuple[str, str | None], object]:
    """(step, output tag) → element type, for every ParDo of the job's graph built from ``argv``."""
    options, job = parse_command_line(argv)
    pipeline = build_pipeline(beam.Pipeline(options=options), job)
    found: dict[tuple[str, str | None], object] = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            for tag, pcollection in node.outputs.items():
                found[(node.full_label, tag)] = pcollection.element_type

    pipeline.visit(Visitor())
    return found


@pytest.mark.canary
@pytest.mark.parametrize("graph", GRAPHS, ids=list(GRAPHS))
def test_each_step_emits_the_type_it_says_and_beam_has_an_exact_coder_for_it(graph, tmp_path):
    argv = [arg.replace("LEDGER", str(tmp_path / "ledger")).replace("DRY", str(tmp_path / "dry"))
            for arg in GRAPHS[graph]]
    found = output_types(argv)
    checked = 0
    for (step, tag), expected in EXPECTED.items():
        for (label, output), element_type in found.items():
            if output == tag and (label == step or label.startswith(step + "/ParDo(")):
                assert element_type == expected, f"{label} {tag or 'main'}: {element_type}, not {expected}"
                checked += 1
    assert checked >= 8
    # The identity pass's call records: the id is 16 bytes, the position a signed 64-bit number.
    records = [t for (step, _), t in found.items() if "/RecordEventCalls" in step or "/RecordCalls" in step]
    assert records or graph == "streaming"
    for element_type in records:
        assert "BytesCoder" in repr(registry.get_coder(element_type)), element_type


@pytest.mark.parametrize("graph", ["batch side_input", "streaming"])
def test_building_the_graph_warns_of_no_type_hint_beam_would_ignore(graph, caplog):
    # Beam logs a WARNING for each hint it cannot use (a composite's DoOutputsTuple, a tuple of
    # PCollections): a user would see one per step at every run.
    with caplog.at_level("WARNING"):
        output_types(GRAPHS[graph])
    assert not [record.getMessage() for record in caplog.records if "type hint" in record.getMessage()]
