"""Three fixes for the per-bundle cost of Beam's streaming DirectRunner, for local streaming runs.

The runner that runs a local streaming job (``BundleBasedDirectRunner``) pays a fixed cost for
every bundle of every step, and profiled (BENCHMARKS.md, "Streaming") almost all of a local job's
time went to such costs, not to the job's own work:

- **Inspecting each DoFn again at every bundle** (``dofn_specs_per_class``). ``get_dofn_specs``
  looks through every method of a DoFn for state and timer parameters each time the runner starts
  a bundle: 1.8 ms a call, two thirds of the runner's time. A DoFn class's specs never change, so
  they are kept per class (and per wrapped function, for ``Map`` and ``FlatMap``).
- **Empty output bundles** (``no_empty_bundles``). Each step's every bundle also emits an (empty)
  bundle on each tagged output, such as the dead letters, and the runner schedules each through
  every step after it: 86% of the bundles of a run carried no element. A ParDo's empty output
  bundles are dropped before they are committed; the runner's watermarks already ignore them.
- **Ten messages per Pub/Sub pull** (``larger_pubsub_pulls``). The runner's Pub/Sub read asks for
  10 messages at a time, so every step pays its per-bundle cost for every 10 events; its
  subscriber client is wrapped to ask for up to ``LOCAL_PULL_MESSAGES`` (same pull, same
  acknowledgement).

All three change private parts of Beam's DirectRunner. Each is applied only where the parts it
needs are there and have the shape it relies on (checked by what they are, not by Beam's version
number), and only by ``python -m pipeline`` for a local streaming job: Dataflow and the batch
runner are untouched. A fix that cannot be applied is logged once as a WARNING saying what it
costs. With them the job and its tests send and count exactly the same.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Messages per pull, so per bundle, on Beam's DirectRunner (which acknowledges them before
# processing them: a local job that crashes loses what it had pulled, docs/streaming.md).
LOCAL_PULL_MESSAGES = 500

_applied: list[str] | None = None  # the fixes applied in this process, once checked


@dataclass(frozen=True)
class RunnerFix:
    """One fix: its name, what a run loses without it, why it cannot apply here (None: it can)."""

    name: str
    cost: str
    problem: Callable[[], str | None]
    apply: Callable[[], None]


# ----- dofn_specs_per_class -------------------------------------------------------------------------

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


def _dofn_specs_problem() -> str | None:
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    get_dofn_specs = getattr(userstate, "get_dofn_specs", None)
    if not callable(get_dofn_specs):
        return "apache_beam.transforms.userstate.get_dofn_specs is gone"
    if list(inspect.signature(get_dofn_specs).parameters) != ["dofn"]:
        return "get_dofn_specs no longer takes just the DoFn"
    if getattr(transform_evaluator, "get_dofn_specs", None) is not get_dofn_specs:
        return "the DirectRunner's evaluators no longer call userstate.get_dofn_specs by that name"
    return None


def _apply_dofn_specs_per_class() -> None:
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    cached = _cached_dofn_specs(userstate.get_dofn_specs)
    userstate.get_dofn_specs = cached  # type: ignore[assignment]
    transform_evaluator.get_dofn_specs = cached  # type: ignore[assignment]


# ----- no_empty_bundles -----------------------------------------------------------------------------

def _without_empty_bundles(finish_bundle: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def finish(evaluator: Any) -> Any:
        result = finish_bundle(evaluator)
        result.uncommitted_output_bundles = [
            bundle for bundle in result.uncommitted_output_bundles if bundle.has_elements()]
        return result

    finish.__wrapped__ = finish_bundle  # type: ignore[attr-defined]
    return finish


def _empty_bundles_problem() -> str | None:
    from apache_beam.runners.direct import bundle_factory, transform_evaluator, util

    evaluator = getattr(transform_evaluator, "_ParDoEvaluator", None)
    if evaluator is None or not callable(evaluator.__dict__.get("finish_bundle")):
        return "the DirectRunner has no _ParDoEvaluator.finish_bundle"
    result = getattr(util, "TransformResult", None)
    if result is None or "uncommitted_output_bundles" not in inspect.signature(result).parameters:
        return "the DirectRunner's TransformResult has no uncommitted_output_bundles"
    if not callable(getattr(getattr(bundle_factory, "_Bundle", None), "has_elements", None)):
        return "the DirectRunner's bundles have no has_elements()"
    return None


def _apply_no_empty_bundles() -> None:
    from apache_beam.runners.direct import transform_evaluator

    evaluator = transform_evaluator._ParDoEvaluator
    evaluator.finish_bundle = _without_empty_bundles(evaluator.finish_bundle)  # type: ignore[method-assign]


# ----- larger_pubsub_pulls --------------------------------------------------------------------------

class _LargerPulls:
    """A Pub/Sub subscriber client whose ``pull`` asks for up to ``LOCAL_PULL_MESSAGES`` messages."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def pull(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["max_messages"] = max(int(kwargs.get("max_messages") or 0), LOCAL_PULL_MESSAGES)
        return self._client.pull(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _pubsub_pulls_problem() -> str | None:
    from apache_beam.runners.direct import transform_evaluator

    evaluator = getattr(transform_evaluator, "_PubSubReadEvaluator", None)
    if evaluator is None:
        return "the DirectRunner has no _PubSubReadEvaluator"
    if not isinstance(evaluator.__dict__.get("_get_subscriber_client"), classmethod):
        return "_PubSubReadEvaluator._get_subscriber_client is no longer a classmethod"
    if "max_messages=" not in inspect.getsource(evaluator):
        return "_PubSubReadEvaluator no longer pulls with max_messages"
    return None


def _apply_larger_pubsub_pulls() -> None:
    from apache_beam.runners.direct import transform_evaluator

    evaluator = transform_evaluator._PubSubReadEvaluator
    original = evaluator.__dict__["_get_subscriber_client"].__func__

    def larger_pulls_client(cls: type, transform: Any) -> _LargerPulls:
        return _LargerPulls(original(cls, transform))

    evaluator._get_subscriber_client = classmethod(larger_pulls_client)  # type: ignore[assignment]


FIXES = (
    RunnerFix("dofn_specs_per_class", "about 1.8 ms more per bundle of every step",
              _dofn_specs_problem, _apply_dofn_specs_per_class),
    RunnerFix("no_empty_bundles", "every step's empty dead-letter bundles scheduled through the steps after it",
              _empty_bundles_problem, _apply_no_empty_bundles),
    RunnerFix("larger_pubsub_pulls", "10 messages per bundle instead of up to 500",
              _pubsub_pulls_problem, _apply_larger_pubsub_pulls),
)


def speed_up_direct_runner() -> list[str]:
    """Apply the fixes this Beam has the parts for, once per process; returns the names applied.

    A fix whose parts are missing or changed is logged as one WARNING with what the run loses.
    """
    global _applied
    if _applied is None:
        _applied = _apply_fixes()
    return list(_applied)


def _apply_fixes() -> list[str]:
    applied, skipped = [], []
    for fix in FIXES:
        problem = fix.problem()
        if problem is None:
            fix.apply()
            applied.append(fix.name)
        else:
            skipped.append(f"{fix.name} ({problem}; costs {fix.cost})")
    if skipped:
        import apache_beam

        log.warning("Beam %s: local streaming runs slower, DirectRunner fixes not applied: %s",
                    apache_beam.__version__, "; ".join(skipped))
    return applied
