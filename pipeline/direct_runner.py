"""Two fixes for the per-bundle cost of Beam's streaming DirectRunner, for local streaming runs.

The runner that runs a local streaming job (``BundleBasedDirectRunner``) pays a fixed cost for
every bundle of every step, and profiled on Beam 2.77 (BENCHMARKS.md, "Streaming") almost all of
a local job's time went to two such costs, not to the job's own work:

- **Inspecting each DoFn again at every bundle.** ``get_dofn_specs`` looks through every method
  of a DoFn for state and timer parameters each time the runner starts a bundle: 1.8 ms a call,
  two thirds of the runner's time. A DoFn class's specs never change, so they are kept per class
  (and per wrapped function, for ``Map`` and ``FlatMap``).
- **Empty output bundles.** Each step's every bundle also emits an (empty) bundle on each tagged
  output, such as the dead letters, and the runner schedules each through every step after it:
  86% of the bundles of a run carried no element. A ParDo's empty output bundles are dropped
  before they are committed; the runner's watermarks already ignore them.

Both patch private parts of Beam's DirectRunner, so they are applied only on the Beam version they
were measured on, and only by ``python -m pipeline`` for a local streaming job; Dataflow and the
batch runner are untouched. With them the job and its tests send and count exactly the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import apache_beam as beam

log = logging.getLogger(__name__)

PATCHED_BEAM_VERSION = "2.77.0"
_APPLIED: list[str] = []


def _cached_dofn_specs(get_dofn_specs: Callable[[Any], Any]) -> Callable[[Any], Any]:
    cache: dict[tuple[type, Any], Any] = {}

    def cached(dofn: Any) -> Any:
        wrapped = getattr(dofn, "_fn", None)  # Map/FlatMap: one DoFn class around many functions
        key = (type(dofn), getattr(wrapped, "__code__", wrapped))
        if key not in cache:
            cache[key] = get_dofn_specs(dofn)
        return cache[key]

    cached.__wrapped__ = get_dofn_specs  # type: ignore[attr-defined]
    return cached


def _without_empty_bundles(finish_bundle: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def finish(evaluator: Any) -> Any:
        result = finish_bundle(evaluator)
        result.uncommitted_output_bundles = [
            bundle for bundle in result.uncommitted_output_bundles if bundle.has_elements()]
        return result

    finish.__wrapped__ = finish_bundle  # type: ignore[attr-defined]
    return finish


def speed_up_direct_runner() -> list[str]:
    """Apply both fixes once per process; returns what is applied (nothing on another Beam)."""
    if _APPLIED or beam.__version__ != PATCHED_BEAM_VERSION:
        if not _APPLIED:
            log.debug("Beam %s: the DirectRunner fixes are for %s only, not applied",
                      beam.__version__, PATCHED_BEAM_VERSION)
        return list(_APPLIED)
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    cached = _cached_dofn_specs(userstate.get_dofn_specs)
    userstate.get_dofn_specs = cached  # type: ignore[assignment]
    transform_evaluator.get_dofn_specs = cached  # type: ignore[assignment]
    _APPLIED.append("dofn_specs_per_class")
    evaluator = transform_evaluator._ParDoEvaluator
    evaluator.finish_bundle = _without_empty_bundles(evaluator.finish_bundle)  # type: ignore[method-assign]
    _APPLIED.append("no_empty_bundles")
    return list(_APPLIED)
