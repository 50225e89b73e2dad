"""Run the hostile-input corpus case by case and the fault runs, and write their report.

    python scripts/reliability.py                 # everything (about 15 minutes on 2 cores), to out/RELIABILITY.md
    python scripts/reliability.py --cases-only    # only the corpus, case by case
    python scripts/reliability.py --update        # everything, overwriting the tracked RELIABILITY.md

(a) Each case of tests/support/hostile_corpus.py runs alone through ``python -m pipeline`` (batch, against
the local Woopra stand-in, ``--summary``): its outcome is the summary's non-zero counts, the exit
code, the dead letter read back and whether a traceback appeared.
(b) The fault runs send generated events (benchmarks/generate_events.py) to the stand-in while it
answers with injected 503s, 429s, dropped connections, timeouts, 400s or an outage.
(c) The report (out/RELIABILITY.md; RELIABILITY.md with --update) gets both tables. Exits 1 if a
case's outcome differs from its expectation or a run crashed. Everything talks to 127.0.0.1 only;
every run is bounded in time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import apache_beam  # noqa: E402

from pipeline.exit_status import for_summary  # noqa: E402
from pipeline.summary import OUTCOME_KEYS  # noqa: E402
from tests.support.hostile_corpus import CASES, CORPUS_CONFIG, HostileCase, corpus_bytes  # noqa: E402
from woopra_standin import Rule, StandIn  # noqa: E402

RUN_TIMEOUT_SECONDS = 600
COMMAND = "python scripts/reliability.py"
TRACKED_REPORT = ROOT / "RELIABILITY.md"
DEFAULT_REPORT = ROOT / "out" / "RELIABILITY.md"  # a run does not change the tracked report unless asked


def env() -> dict[str, str]:
    """Environment for the job's subprocesses: the repo importable."""
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@dataclass
class JobRun:
    """One ``python -m pipeline`` run against the stand-in: what it printed, counted and wrote."""

    returncode: int
    stderr: str
    summary: dict[str, Any]
    dead_letters: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    seconds: float
    unreadable_dead_letters: int = 0  # dead-letter lines that are not JSON

    @property
    def traceback(self) -> bool:
        """True when a Python traceback appeared on stderr."""
        return "Traceback (most recent call last)" in self.stderr

    def last_error(self) -> str:
        """The last line of stderr that names an exception (the cause of a traceback)."""
        lines = [text.strip() for text in self.stderr.splitlines() if "Error" in text or "Exception" in text]
        return lines[-1] if lines else ""

    def outcomes(self) -> dict[str, int]:
        """The summary's non-zero outcome counts (``would_send`` too, in a dry run)."""
        keys = [*OUTCOME_KEYS, "would_send"]
        return {key: int(self.summary[key]) for key in keys if self.summary.get(key)}


def run_job(input_path: Path, work: Path, standin: StandIn, extra: list[str] | None = None) -> JobRun:
    """Run the job on ``input_path`` with the corpus config, writing under ``work``."""
    config = work / "config.json"
    config.write_text(json.dumps(CORPUS_CONFIG))
    args = [sys.executable, "-m", "pipeline", "--input", str(input_path), "--config", str(config),
            "--woopra_endpoint", standin.url, "--dead_letter", f"{work}/dead/",
            "--summary", str(work / "summary.json"), "--rate_limit", "1000", *(extra or [])]
    started = time.monotonic()
    try:
        done = subprocess.run(args, cwd=ROOT, env=env(), capture_output=True, text=True, errors="replace",
                              timeout=RUN_TIMEOUT_SECONDS)
        returncode, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stderr = -1, f"timed out after {RUN_TIMEOUT_SECONDS} s\n{exc.stderr or ''}"
    seconds = time.monotonic() - started
    summary_path = work / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    records: list[dict[str, Any]] = []
    unreadable = 0
    for path in sorted((work / "dead").glob("*.jsonl")):
        for text in path.read_text(encoding="utf-8", errors="replace").split("\n"):
            try:
                records += [json.loads(text)] if text.strip() else []
            except ValueError:
                unreadable += 1  # e.g. a file left half-written by a job that crashed
    return JobRun(returncode, stderr, summary, records, standin.requests, seconds, unreadable)


# ----- (a) the corpus, case by case ---------------------------------------------------------


@dataclass
class CaseResult:
    """A corpus case's observed outcome and whether it is the expected one."""

    case: HostileCase
    run: JobRun
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the case did exactly what the corpus says."""
        return not self.problems

    def observed(self) -> str:
        """The outcome in a few words: summary keys, dead-letter reason and error."""
        if not self.run.summary:
            return f"no summary (exit {self.run.returncode}): {self.run.last_error()[:120]}"
        text = ", ".join(f"{key} {count}" if count != 1 else key for key, count in self.run.outcomes().items())
        for record in self.run.dead_letters[:1]:
            error = str(record.get("error") or "")
            text += f" ({record.get('reason')}: {error[:70]}{'…' if len(error) > 70 else ''})"
        if self.run.returncode != 0:
            text += f"; exit {self.run.returncode}"
        if self.run.traceback:
            text += f"; traceback: {self.run.last_error()[:120]}"
        return text


def expected_status(run: JobRun) -> int:
    """The exit status the run's summary deserves (3 when nothing was delivered, docs/operations.md)."""
    return for_summary(run.summary) if run.summary else 0


def check_case(case: HostileCase, run: JobRun) -> list[str]:
    """Every way ``run`` differs from what ``case`` expects."""
    problems = []
    if run.returncode != expected_status(run):
        problems.append(f"exit code {run.returncode}")
    if run.traceback:
        problems.append("traceback on stderr")
    if run.unreadable_dead_letters:
        problems.append(f"{run.unreadable_dead_letters} dead-letter lines are not JSON")
    if not run.summary:
        return problems + ["no summary written"]
    if not run.summary.get("balanced") or run.summary.get("read") != 1:
        problems.append(f"read {run.summary.get('read')}, balanced {run.summary.get('balanced')}")
    if run.outcomes() != {case.expected: 1}:
        problems.append(f"outcome {run.outcomes()}")
    if case.dead_lettered:
        reasons = [record.get("reason") for record in run.dead_letters]
        if reasons != [case.reason or case.expected]:
            problems.append(f"dead letters {reasons}")
        for record in run.dead_letters:
            if record.get("event") is None and record.get("raw") is None:
                problems.append("dead letter keeps neither event nor raw")
            if case.raw_base64 and base64.b64decode(record.get("raw_base64") or "") != case.line:
                problems.append("raw_base64 is not the input bytes")
    elif run.dead_letters:
        problems.append(f"unexpected dead letters {[record.get('reason') for record in run.dead_letters]}")
    sent = [request for request in run.requests if request["status"] == 200]
    if case.expected == "delivered_200":
        if len(run.requests) != 1:
            problems.append(f"{len(run.requests)} requests received")
        for request in sent[:1]:
            problems += [f"{key} = {request['params'].get(key)!r}" for key, value in case.params.items()
                         if request["params"].get(key) != value]
            problems += [f"header {name} sent" for name in case.absent_headers if name in request["headers"]]
    elif run.requests:
        problems.append(f"{len(run.requests)} requests received")
    return problems


def run_case(case: HostileCase) -> CaseResult:
    """Run one case alone, against a stand-in of its own."""
    with tempfile.TemporaryDirectory(prefix="reliability-case-") as tmp, StandIn(port=0) as standin:
        work = Path(tmp)
        (work / "input.jsonl").write_bytes(case.line + b"\n")
        run = run_job(work / "input.jsonl", work, standin)
    return CaseResult(case, run, check_case(case, run))


def run_cases(cases: tuple[HostileCase, ...], workers: int, progress: Callable[[str], None]) -> list[CaseResult]:
    """The corpus cases, ``workers`` at a time, in corpus order."""
    results: list[CaseResult] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(run_case, cases):
            results.append(result)
            progress(f"case {len(results)}/{len(cases)} {result.case.name}: "
                     f"{'ok' if result.passed else 'FAIL ' + '; '.join(result.problems)}")
    return results


# ----- (b) the fault runs --------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRun:
    """One run of generated events against a stand-in that misbehaves in a scripted way."""

    name: str
    what: str
    rules: tuple[Rule, ...] = ()
    extra_args: tuple[str, ...] = ()
    outage_seconds: float = 0.0  # every request fails with 503 for this long after the first one
    with_corpus: bool = False  # the hostile corpus is appended to the events
    all_delivered: bool = False  # every deliverable event must end delivered


FAULT_RUNS = (
    FaultRun("no_faults", "the stand-in answers 200 to everything", all_delivered=True),
    FaultRun("503_once", "every product_viewed request gets 503 on its first attempt",
             (Rule({"event": "product_viewed"}, [503, 200]),), all_delivered=True),
    FaultRun("429_retry_after", "every add_to_cart request gets 429 with Retry-After: 1 on its first attempt",
             (Rule({"event": "add_to_cart"}, [429, 200], retry_after="1"),), all_delivered=True),
    FaultRun("dropped_connections", "every search request's first attempt: connection closed, no answer",
             (Rule({"event": "search"}, [200], drop_attempts=1),), all_delivered=True),
    FaultRun("timeouts", "every checkout_started request answered after 2 s; --request_timeout 1, "
             "--max_attempts 2", (Rule({"event": "checkout_started"}, [200], delay_ms=2000),),
             ("--request_timeout", "1", "--max_attempts", "2")),
    FaultRun("rejected_400", "every identify request gets 400", (Rule({"_path": "/identify/"}, [400]),)),
    FaultRun("outage_5s", "every request gets 503 for the 5 s after the first one, then 200",
             outage_seconds=5.0),
    FaultRun("everything", "all the faults above at once (outage included; --request_timeout 1, 5 attempts) "
             "and the hostile corpus appended",
             (Rule({"event": "product_viewed"}, [503, 200]), Rule({"event": "add_to_cart"}, [429, 200],
                                                                  retry_after="1"),
              Rule({"event": "search"}, [200], drop_attempts=1),
              Rule({"event": "checkout_started"}, [200], delay_ms=2000), Rule({"_path": "/identify/"}, [400])),
             ("--request_timeout", "1"), outage_seconds=5.0, with_corpus=True),
)


@dataclass
class FaultResult:
    """What one fault run counted and what the stand-in saw."""

    fault: FaultRun
    run: JobRun
    problems: list[str]

    def delivered(self) -> int:
        """Events counted delivered (200 and 202)."""
        return int(self.run.summary.get("delivered_200", 0)) + int(self.run.summary.get("delivered_202", 0))

    def dead_by_reason(self) -> Counter[str]:
        """Dead-letter records by reason, as read back from the files."""
        return Counter(str(record.get("reason")) for record in self.run.dead_letters)

    def accepted_copies(self) -> Counter[str]:
        """Accepted (2xx) requests per request identity, ``path?query``."""
        return Counter(f"{r['path']}?{r['query']}" for r in self.run.requests
                       if r["status"] is not None and 200 <= r["status"] < 300)

    def possible_duplicates(self) -> int:
        """Accepted copies beyond the first of the same request."""
        return sum(count - 1 for count in self.accepted_copies().values())


def hold_outage(standin: StandIn, rules: list[Rule], seconds: float, stop: threading.Event) -> None:
    """Answer 503 to everything from the first request for ``seconds``, then apply ``rules``."""
    if standin.wait_for(1, timeout=RUN_TIMEOUT_SECONDS):
        stop.wait(seconds)
    standin.set_rules(rules)


def check_fault(fault: FaultRun, run: JobRun, events: int) -> list[str]:
    """Crashes, lost events and, where every event must arrive, any that did not."""
    problems = []
    if run.returncode != expected_status(run):
        problems.append(f"exit code {run.returncode}")
    if run.traceback:
        problems.append("traceback on stderr")
    if run.unreadable_dead_letters:
        problems.append(f"{run.unreadable_dead_letters} dead-letter lines are not JSON")
    if not run.summary.get("balanced"):
        problems.append("summary does not balance")
    if run.summary.get("read") != events:
        problems.append(f"read {run.summary.get('read')} of {events}")
    dead = int(run.summary.get("dead_lettered", -1))
    if len(run.dead_letters) != dead:
        problems.append(f"{len(run.dead_letters)} dead-letter records, summary says {dead}")
    if fault.all_delivered and run.outcomes() != {"delivered_200": events}:
        problems.append(f"not all delivered: {run.outcomes()}")
    return problems


def run_fault(fault: FaultRun, events_path: Path, events: int) -> FaultResult:
    """Run the job on the generated events with the fault injected."""
    with tempfile.TemporaryDirectory(prefix="reliability-fault-") as tmp:
        work = Path(tmp)
        input_path = events_path
        count = events
        if fault.with_corpus:
            input_path = work / "input.jsonl"
            input_path.write_bytes(events_path.read_bytes() + corpus_bytes())
            count = events + len(CASES)
        rules = list(fault.rules)
        stop = threading.Event()
        with StandIn(port=0, rules=[Rule({}, [503])] if fault.outage_seconds else rules) as standin:
            watcher = None
            if fault.outage_seconds:
                watcher = threading.Thread(target=hold_outage, args=(standin, rules, fault.outage_seconds, stop),
                                           daemon=True)
                watcher.start()
            run = run_job(input_path, work, standin, list(fault.extra_args))
            stop.set()
            if watcher is not None:
                watcher.join(timeout=10)
    return FaultResult(fault, run, check_fault(fault, run, count))


def generate_events(count: int, folder: Path) -> Path:
    """``count`` generated events (fixed seed; times within the last 60 days) in ``folder``."""
    path = folder / f"events-{count}.jsonl"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_events.py"), str(count), str(path)],
                   check=True, stdout=subprocess.DEVNULL, timeout=600)
    return path


# ----- (c) RELIABILITY.md ---------------------------------------------------------------------


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def git_commit() -> str:
    """The checked-out commit, with ``+ local changes`` when the tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True)
    return head.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")


def case_table(results: list[CaseResult]) -> list[str]:
    """The corpus table: one row per case."""
    lines = ["| # | Case | What it is | Expected | Observed | Pass |", "|---|---|---|---|---|---|"]
    for number, result in enumerate(results, start=1):
        case = result.case
        expected = f"invalid ({case.reason})" if case.expected == "invalid" else case.expected
        observed = result.observed() + ("" if result.passed else " — " + "; ".join(result.problems))
        lines.append(f"| {number} | `{case.name}` | {cell(case.what)} | {expected} | {cell(observed)} | "
                     f"{'yes' if result.passed else '**no**'} |")
    return lines


def fault_table(results: list[FaultResult]) -> list[str]:
    """The fault-run table: one row per run."""
    lines = ["| Run | Fault | Events in | Delivered | Dead-lettered by reason | Filtered | Retried requests | "
             "Requests received | Possible duplicates | Exit | Time | Pass |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        summary = result.run.summary
        dead = ", ".join(f"{reason} {count}" for reason, count in sorted(result.dead_by_reason().items())) or "0"
        filtered = sum(int(summary.get(key, 0)) for key in
                       ("consent_denied", "consent_missing", "unsupported", "dropped_unmapped", "skipped_replay"))
        verdict = "yes" if not result.problems else "**no**: " + "; ".join(result.problems)
        lines.append(f"| `{result.fault.name}` | {cell(result.fault.what)} | {summary.get('read', '?')} | "
                     f"{result.delivered()} | {dead} | {filtered} | {summary.get('retried_requests', '?')} | "
                     f"{len(result.run.requests)} | {result.possible_duplicates()} | {result.run.returncode} | "
                     f"{result.run.seconds:.0f} s | {cell(verdict)} |")
    return lines


def write_report(path: Path, cases: list[CaseResult], faults: list[FaultResult], events: int,
                 command: str, commit: str) -> None:
    """Write the report (RELIABILITY.md's form) from the results of this run, its folder created."""
    passed = sum(result.passed for result in cases)
    outcome_counts = Counter(result.case.expected for result in cases)
    lines = [
        "# Reliability: hostile inputs and fault runs",
        "",
        "Everything below comes from one real run of the script that wrote this file:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Run on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit {commit} "
        f"(Python {platform.python_version()}, Apache Beam {apache_beam.__version__}, batch `FnApiRunner`, "
        "the local Woopra stand-in `woopra_standin` on 127.0.0.1, `--rate_limit 1000`). Each job is "
        "`python -m pipeline` as a user runs it, with the config `CORPUS_CONFIG` of tests/support/hostile_corpus.py "
        "(project `mywebsite.com`, consent `analytics` required and denied by default, `unmapped_events: drop`).",
        "",
        "## Hostile inputs",
        "",
    ]
    if cases:
        lines += [
            f"{len(cases)} cases, each one input line run **alone** through the job; {passed} of {len(cases)} "
            "gave the expected outcome. Expected outcomes, by summary key: "
            + ", ".join(f"{key} {count}" for key, count in outcome_counts.most_common()) + ".",
            "",
            "A case passes when the job exits 0 without a traceback, its summary balances with `read` 1, the one "
            "non-zero outcome is the expected one, a dead-lettered case wrote exactly one dead letter of the "
            "expected reason that keeps the event or the raw line (and, for bytes that are not UTF-8, the exact "
            "bytes as `raw_base64`), and a delivered case sent exactly one request carrying the parameters the "
            "corpus names (e.g. `cookie=1234567890` for a numeric `vendor_ids.woopra_cookie`, `project` and "
            "`ce_app` untouched by properties of those names) and no header smuggled in through the User-Agent. "
            "The rules behind the expectations are in docs/behaviour.md. "
            "`tests/e2e/test_hostile_corpus.py` runs the same corpus as one file in one job.",
            "",
        ]
        failed = [result for result in cases if not result.passed]
        if failed:
            lines += ["Not as expected in this run:", ""]
            lines += [f"- `{result.case.name}`: expected {result.case.reason or result.case.expected}, "
                      f"{cell('; '.join(result.problems))}" for result in failed]
            lines.append("")
        lines += [*case_table(cases), ""]
    else:
        lines += ["(not run this time: `--faults-only`)", ""]
    lines += ["## Fault runs", ""]
    if faults:
        lines += [
            f"{events:,} events from `benchmarks/generate_events.py` ({events // 10:,} visitors browsing, identifying "
            "themselves and buying; consent granted; every one deliverable), sent to the stand-in while it "
            "misbehaves as the second column says. Retries follow docs/behaviour.md#delivery: 5 attempts "
            "by default, exponential back-off with jitter from 0.5 s, `Retry-After` honoured.",
            "",
            *fault_table(faults),
            "",
            "- **Events in** is the summary's `read`; **Delivered** counts `delivered_200` + `delivered_202`; "
            "**Dead-lettered** is read back from the dead-letter files; **Filtered** is consent, unsupported "
            "and unmapped events (only the corpus has any); **Retried requests** is the summary's "
            "`retried_requests` (attempts after the first); **Requests received** counts every attempt the "
            "stand-in recorded, dropped and timed-out ones included.",
            "- **Possible duplicates** counts requests the stand-in *accepted* (recorded with a 2xx status) "
            "more than once: for each distinct request (`path?query`; the `messageId` is not a Woopra "
            "parameter, but every generated event has its own cookie, time and event, so its query is unique, "
            "as the `no_faults` run shows with 0), the accepted copies beyond the first. They come only from "
            "timeouts: the stand-in took the request and answered after 2 s, but the job had given up after "
            "`--request_timeout 1` and tried again, so Woopra would have recorded the event once per attempt "
            "although the job counts it `retries_exhausted`. A 503, 429, 400 or dropped connection is never "
            "accepted, so it cannot make a duplicate.",
            "- A run passes when the job exits with the status its summary calls for (0, or 3 when nothing "
            "was delivered) without a traceback, its summary balances and reads every "
            "event, the dead-letter files hold exactly the summary's `dead_lettered` records, and (for the "
            "runs whose faults are transient) every event ends `delivered_200`.",
            "",
        ]
    else:
        lines += ["(not run this time: `--cases-only`)", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run the corpus and the fault runs; write the report; 1 if anything failed."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=str(DEFAULT_REPORT), help="report to write (default out/RELIABILITY.md)")
    where.add_argument("--update", action="store_const", const=str(TRACKED_REPORT), dest="out",
                       help="overwrite the tracked RELIABILITY.md")
    parser.add_argument("--workers", type=int, default=2, help="corpus cases run at a time")
    parser.add_argument("--events", type=int, default=2000, help="generated events per fault run")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--cases-only", action="store_true", help="skip the fault runs")
    only.add_argument("--faults-only", action="store_true", help="skip the corpus")
    parser.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    parser.add_argument("--fault", action="append", default=[], help="run only this fault run (repeatable)")
    args = parser.parse_args(argv)
    selected = tuple(case for case in CASES if not args.case or case.name in args.case)

    def progress(text: str) -> None:
        print(text, flush=True)

    commit = git_commit()  # the code that ran, even if the tree moves on during the run
    cases = [] if args.faults_only else run_cases(selected, args.workers, progress)
    faults: list[FaultResult] = []
    if not args.cases_only:
        with tempfile.TemporaryDirectory(prefix="reliability-events-") as tmp:
            events_path = generate_events(args.events, Path(tmp))
            for fault in (f for f in FAULT_RUNS if not args.fault or f.name in args.fault):
                result = run_fault(fault, events_path, args.events)
                faults.append(result)
                progress(f"fault run {fault.name}: {result.run.outcomes()} dead {dict(result.dead_by_reason())} "
                         f"retried {result.run.summary.get('retried_requests')} duplicates "
                         f"{result.possible_duplicates()} {'ok' if not result.problems else result.problems}")
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]).strip()
    write_report(Path(args.out), cases, faults, args.events, command, commit)
    failed = [r.case.name for r in cases if not r.passed] + [r.fault.name for r in faults if r.problems]
    print(f"wrote {args.out}: {sum(r.passed for r in cases)}/{len(cases)} cases as expected, "
          f"{sum(not r.problems for r in faults)}/{len(faults)} fault runs ok")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
