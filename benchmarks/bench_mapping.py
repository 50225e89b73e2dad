"""Benchmark 5: mapping CPU, the pure functions alone (no Beam, no subprocess, one core).

    python benchmarks/bench_mapping.py [--events 20000] [--repeat 7] [--smoke]

On the events of a generated file, each stage is timed on its own over inputs prepared
beforehand, best of ``--repeat`` rounds over all stages (time.perf_counter), as events/s on one core:
parse (transforms.rules.events.parse_input), consent (transforms.rules.consent.decide_consent), identity
(transforms.rules.identity.enrich_in_order per visitor, as in harness.request_urls), build_request
(transforms.rules.woopra_mapping.build_request on the enriched events) and the whole chain (all four,
from the raw lines). Target: build_request >= 50,000 events/s per core.

Reference, measured in the same run on the same lines: ``json.loads`` alone, the floor of any
parse; each stage's ``ratio_to_json_loads`` says how many json.loads it costs per event, a figure
that drifts less than events/s on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable

from harness import ROOT, events_file, load_average

sys.path.insert(0, str(ROOT))

from transforms.rules.consent import ConsentPolicy, decide_consent  # noqa: E402
from transforms.rules.events import Event, RawInput, parse_input  # noqa: E402
from transforms.rules.identity import VisitorIdentity, enrich_in_order  # noqa: E402
from transforms.rules.woopra_mapping import WoopraRequest, WoopraSettings, build_request  # noqa: E402

TARGET = 50_000  # build_request events/s per core
# One repetition over 1,000 events on a shared CI machine says little in events/s; a smoke run
# judges build_request's cost in json.loads instead (1.4-1.6 measured, best of 5), which drifts less.
SMOKE_JSON_LOADS = 2.0
TTL_MS = 30 * 86_400_000


def best_rates(stages: dict[str, tuple[Callable[[], object], int]], repeat: int) -> dict[str, float]:
    """Events/s of each stage: the fastest of ``repeat`` timings of its work over its events.

    The repetitions go round all stages in turn, so a burst of noise from a neighbour on this
    shared machine hits one repetition of every stage rather than every repetition of one stage.
    """
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(repeat):
        for name, (work, _count) in stages.items():
            gc.collect()
            started = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: count / best[name] for name, (_work, count) in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per stage; the best counts")
    parser.add_argument("--smoke", action="store_true", help="1,000 events, one repetition (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.repeat = 1_000, 5  # best of 5: the first round also fills the caches
    lines = events_file(args.events).read_bytes().splitlines()
    raws = [RawInput(line) for line in lines]
    settings = WoopraSettings(project="bench.example", endpoint="http://127.0.0.1:9/track")
    policy = ConsentPolicy()

    parsed = [parse_input(raw) for raw in raws]
    events = [e for e in parsed if isinstance(e, Event)]
    allowed = [e for e in events if decide_consent(e.original, policy).outcome.allowed]
    by_visitor: dict[str, list[Event]] = {}
    for event in allowed:
        by_visitor.setdefault(event.visitor, []).append(event)
    visitors = list(by_visitor.values())
    enriched = [e for group in visitors for e in enrich_in_order(group, VisitorIdentity(), TTL_MS)[0]]
    requests = [r for r in (build_request(e, settings) for e in enriched) if isinstance(r, WoopraRequest)]

    def chain() -> None:
        groups: dict[str, list[Event]] = {}
        for raw in raws:
            event = parse_input(raw)
            if isinstance(event, Event) and decide_consent(event.original, policy).outcome.allowed:
                groups.setdefault(event.visitor, []).append(event)
        for group in groups.values():
            for item in enrich_in_order(group, VisitorIdentity(), TTL_MS)[0]:
                build_request(item, settings)

    stages = {
        "json_loads_reference": (lambda: [json.loads(line) for line in lines], len(lines)),
        "parse": (lambda: [parse_input(raw) for raw in raws], len(raws)),
        "consent": (lambda: [decide_consent(e.original, policy) for e in events], len(events)),
        "identity": (lambda: [enrich_in_order(group, VisitorIdentity(), TTL_MS) for group in visitors],
                     len(allowed)),
        "build_request": (lambda: [build_request(e, settings) for e in enriched], len(enriched)),
        "whole_chain": (chain, len(raws)),
    }
    rates = best_rates(stages, args.repeat)
    reference = rates["json_loads_reference"]
    print(json.dumps({
        "benchmark": "mapping", "events": len(raws), "delivered_events": len(requests), "visitors": len(visitors),
        "repeat": args.repeat, "target_build_request_per_second": TARGET,
        "events_per_second": {name: round(rate) for name, rate in rates.items()},
        "ratio_to_json_loads": {name: round(reference / rate, 2) for name, rate in rates.items()
                                if name != "json_loads_reference"},
        "build_request_over_target": round(rates["build_request"] / TARGET, 3),
        "pass_build_request_target": rates["build_request"] >= TARGET,
        "pass_criterion": (f"build_request <= {SMOKE_JSON_LOADS} json.loads per event" if args.smoke
                           else f"build_request >= {TARGET}/s"),
        "pass": (reference / rates["build_request"] <= SMOKE_JSON_LOADS if args.smoke
                 else rates["build_request"] >= TARGET),
        "load_average": load_average(),
    }))


if __name__ == "__main__":
    main()
