"""Streaming: the job draining a Pub/Sub backlog vs Beam's streaming DirectRunner alone (issue 13).

    python benchmarks/bench_streaming.py [--events 5000] [--rounds 3] [--timeout 900] [--smoke]
                                         [--job_args "--delivery_process off"]

Google's Pub/Sub emulator (the one in PUBSUB_EMULATOR_HOST, else one started on a free loopback
port with scripts/pubsub_emulator.sh and stopped at the end) holds, for each contender and round,
a fresh topic and subscription with a backlog of the same N consented events
(benchmarks/generate_events.py: N/10 visitors, pages, tracks and an identify each). Then, side by
side and alternating within each round:

- **reference**: benchmarks/streaming_reference.py, ``ReadFromPubSub`` → ``json.loads`` → a
  counting DoFn on the streaming ``BundleBasedDirectRunner``;
- **reference with the job's fixes** (``reference_fixed``): the same, with the local Pub/Sub pulls
  and per-bundle fixes the job applies to itself on this runner (pipeline/direct_runner.py), the
  fastest a trivial pipeline goes here;
- **job**: ``python -m pipeline --streaming --input_subscription ...`` delivering to the Woopra
  stand-in (its own process) with ``--rate_limit 1000000`` (and ``--job_args``, to compare options).

Each drains its backlog (bounded by ``--timeout``). Its rate is counted from its first event to
its last: for the reference when its DoFn counted them, for the job when the stand-in received
them, so neither rate includes Beam's start-up (the ``*_end_to_end`` rates do, from process
start). CPU is user + system time of the contender's process tree (the job's delivery process
included; not the emulator's or the stand-in's), sampled from /proc every POLL_SECONDS between
the last sample before its first event and the first sample after its last one. Every published
event must be accounted for: counted by the reference; read, delivered once and balanced in
the job's summary. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import (
    PYTHON,
    ROOT,
    StandInProcess,
    env,
    events_file,
    free_port,
    load_average,
    median,
    summary_delivered,
)

PROJECT = "bench-streaming"
POLL_SECONDS = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The job logs its delivered count once a second; the last line is read before it is stopped.
# Issue 13's target for a full run; a smoke run (tiny, one round) is judged on accounting only.
TARGET = 0.3
PROGRESS = re.compile(r"progress: read=(\d+) delivered=(\d+)")


@contextlib.contextmanager
def pubsub_emulator() -> Iterator[str]:
    """``host:port`` of Google's Pub/Sub emulator: PUBSUB_EMULATOR_HOST's, or one of our own."""
    existing = os.environ.get("PUBSUB_EMULATOR_HOST")
    if existing:
        yield existing
        return
    port = free_port()
    state = tempfile.mkdtemp(prefix="bench-pubsub-")
    script_env = dict(os.environ, PUBSUB_PORT=str(port), PUBSUB_STATE_DIR=state, PUBSUB_BACKEND="emulator")
    script = str(ROOT / "scripts" / "pubsub_emulator.sh")
    subprocess.run(["bash", script, "start"], env=script_env, check=True, capture_output=True, timeout=180)
    os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    try:
        yield os.environ["PUBSUB_EMULATOR_HOST"]
    finally:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        subprocess.run(["bash", script, "stop"], env=script_env, capture_output=True, timeout=60)


@contextlib.contextmanager
def backlog(lines: list[bytes]) -> Iterator[str]:
    """A new topic and subscription holding ``lines`` as messages; yields the subscription."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=500))
    subscriber = pubsub_v1.SubscriberClient()
    name = f"backlog-{uuid.uuid4().hex[:10]}"
    topic, subscription = f"projects/{PROJECT}/topics/{name}", f"projects/{PROJECT}/subscriptions/{name}"
    publisher.create_topic(name=topic, timeout=30)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=600, timeout=30)
    try:
        for future in [publisher.publish(topic, line) for line in lines]:
            future.result(timeout=60)
        yield subscription
    finally:
        subscriber.delete_subscription(subscription=subscription, timeout=30)
        publisher.delete_topic(topic=topic, timeout=30)
        subscriber.close()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its live descendants and its reaped children, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue  # ended between two reads
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        for task in tasks:
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total / CLOCK_TICKS


@dataclass
class Drain:
    """One contender draining one backlog."""

    count: int
    started_at: float  # wall clock at process start
    first_at: float  # wall clock of its first and last event
    last_at: float
    cpu_seconds: float  # between the samples around the first and the last event

    @property
    def per_second(self) -> float:
        return (self.count - 1) / (self.last_at - self.first_at) if self.last_at > self.first_at else 0.0

    @property
    def per_second_end_to_end(self) -> float:
        return self.count / (self.last_at - self.started_at) if self.last_at > self.started_at else 0.0

    @property
    def cpu_seconds_per_1000(self) -> float:
        return self.cpu_seconds / self.count * 1000 if self.count else 0.0


def follow(process: subprocess.Popen, counted: Callable[[], int], expected: int, timeout: float) -> float:
    """Poll until ``counted()`` reaches ``expected``; CPU seconds the process tree spent meanwhile."""
    deadline = time.monotonic() + timeout
    before_first = tree_cpu_seconds(process.pid)
    while time.monotonic() < deadline and process.poll() is None:
        count, cpu = counted(), tree_cpu_seconds(process.pid)
        if count >= expected:
            return cpu - before_first
        if count == 0:
            before_first = cpu
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"drained {counted()} of {expected} events in {timeout} s (exit code {process.poll()})")


def stop(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def run_reference(subscription: str, expected: int, timeout: float, workdir: Path, fixed: bool = False) -> Drain:
    """benchmarks/streaming_reference.py on the backlog, until it has counted every message."""
    status_path, stderr_path = workdir / "reference-status.json", workdir / "reference-stderr.log"
    status_path.unlink(missing_ok=True)

    def status() -> dict:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(status_path.read_text())
        return {"count": 0}

    with stderr_path.open("w") as stderr:
        started_at = time.time()
        process = subprocess.Popen(
            [PYTHON, "benchmarks/streaming_reference.py", subscription, str(status_path), str(timeout + 60),
             *(["--with_job_fixes"] if fixed else [])],
            cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            cpu = follow(process, lambda: int(status()["count"]), expected, timeout)
            time.sleep(0.5)  # a message counted beyond those expected would show in the next status
            done = status()
        except RuntimeError as exc:
            raise RuntimeError(f"reference: {exc}\n{stderr_path.read_text()[-3000:]}") from None
        finally:
            stop(process)  # it runs until killed
    return Drain(done["count"], started_at, done["first_at"], done["last_at"], cpu)


class _LineCounter:
    """Counts the lines of a file that grows (the stand-in's recording), reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self) -> int:
        with contextlib.suppress(OSError), self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            self.lines += chunk.count(b"\n", 0, complete)
            self.offset += complete
        return self.lines


def last_progress(stderr_path: Path) -> tuple[int, int]:
    """(read, delivered) from the job's latest progress line."""
    found = PROGRESS.findall(stderr_path.read_text(errors="replace"))
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def run_job(subscription: str, expected: int, timeout: float, workdir: Path,
            job_args: list[str]) -> tuple[Drain, dict]:
    """``python -m pipeline --streaming`` on the backlog, to the stand-in, until all is delivered;
    then stopped as Ctrl-C would. Returns its drain and its summary."""
    summary_path, stderr_path = workdir / "summary.json", workdir / "job-stderr.log"
    summary_path.unlink(missing_ok=True)
    with StandInProcess() as standin, stderr_path.open("w") as stderr:
        started_at = time.time()
        process = subprocess.Popen(
            [PYTHON, "-m", "pipeline", "--streaming", "--input_subscription", subscription, "--project", PROJECT,
             "--woopra_project", "bench.example", "--woopra_endpoint", standin.url, "--rate_limit", "1000000",
             "--dead_letter", f"{workdir}/dead/", "--summary", str(summary_path), "--progress_interval_seconds", "1",
             *job_args],
            cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            try:
                cpu = follow(process, _LineCounter(standin.record), expected, timeout)
            except RuntimeError as exc:
                raise RuntimeError(f"job: {exc}\n{stderr_path.read_text()[-3000:]}") from None
            # The stand-in records a request before it answers: wait for the job to count the answers.
            deadline = time.monotonic() + 30
            while last_progress(stderr_path)[1] < expected and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
        finally:
            stop(process, signal.SIGTERM)
        received = standin.received()
    if process.returncode != 0 or not summary_path.exists():
        raise RuntimeError(f"job failed ({process.returncode}):\n{stderr_path.read_text()[-3000:]}")
    return Drain(len(received), started_at, min(received), max(received), cpu), json.loads(summary_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each contender may take to drain")
    parser.add_argument("--smoke", action="store_true", help="tiny size, one round (CI)")
    parser.add_argument("--job_args", default="", help="more options for python -m pipeline, as one string")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.rounds, args.timeout = 300, 1, 180.0
    lines = events_file(args.events).read_bytes().splitlines()
    references: list[Drain] = []
    fixed_references: list[Drain] = []
    jobs: list[Drain] = []
    accounted: list[bool] = []
    load_before = load_average()
    with pubsub_emulator(), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for round_number in range(args.rounds):
            # Alternate who goes first, so neither always meets a machine the other just warmed.
            order = ("reference", "job", "reference_fixed")
            for contender in order if round_number % 2 == 0 else tuple(reversed(order)):
                with backlog(lines) as subscription:
                    if contender.startswith("reference"):
                        fixed = contender == "reference_fixed"
                        reference = run_reference(subscription, len(lines), args.timeout, workdir, fixed)
                        (fixed_references if fixed else references).append(reference)
                        accounted.append(reference.count == len(lines))
                    else:
                        job, summary = run_job(subscription, len(lines), args.timeout, workdir,
                                               shlex.split(args.job_args))
                        jobs.append(job)
                        accounted.append(job.count == summary["read"] == summary_delivered(summary) == len(lines)
                                         and summary["balanced"] is True)
    reference_median = median([r.per_second for r in references])
    job_median = median([j.per_second for j in jobs])
    ratio = job_median / reference_median if reference_median else 0.0
    fixed_median = median([r.per_second for r in fixed_references])
    if args.smoke:
        criterion, passed = "every published event accounted", all(accounted)
    else:
        criterion = f"job >= {TARGET} of the reference, every event accounted"
        passed = ratio >= TARGET and all(accounted)
    print(json.dumps({
        "benchmark": "streaming", "events": len(lines), "visitors": len(lines) // 10, "rounds": args.rounds,
        "job_args": args.job_args,
        "reference_per_second": [round(r.per_second) for r in references],
        "job_per_second": [round(j.per_second, 1) for j in jobs],
        "reference_per_second_end_to_end": [round(r.per_second_end_to_end) for r in references],
        "job_per_second_end_to_end": [round(j.per_second_end_to_end, 1) for j in jobs],
        "reference_cpu_seconds_per_1000_events": [round(r.cpu_seconds_per_1000, 2) for r in references],
        "job_cpu_seconds_per_1000_events": [round(j.cpu_seconds_per_1000, 2) for j in jobs],
        "reference_fixed_per_second": [round(r.per_second) for r in fixed_references],
        "reference_fixed_cpu_seconds_per_1000_events": [round(r.cpu_seconds_per_1000, 2) for r in fixed_references],
        "median_reference": round(reference_median), "median_reference_fixed": round(fixed_median),
        "median_job": round(job_median, 1),
        "ratio_job_to_reference": round(ratio, 3),
        "ratio_job_to_reference_fixed": round(job_median / fixed_median, 3) if fixed_median else 0.0,
        "every_event_accounted": all(accounted),
        "pass_criterion": criterion, "pass": passed,
        "load_average_before": load_before, "load_average_after": load_average(),
    }))


if __name__ == "__main__":
    main()
