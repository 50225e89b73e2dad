"""Shared pieces of the benchmarks: local servers, timed subprocess runs, request URLs, stats.

Everything talks to 127.0.0.1 only, and every run is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
PYTHON = sys.executable


def env() -> dict[str, str]:
    """Environment for subprocesses: the repo importable."""
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def events_file(count: int) -> Path:
    """A generated JSON-lines file of ``count`` events (made once, kept under benchmarks/data/)."""
    path = DATA / f"events-{count}.jsonl"
    if not path.exists():
        # Written under another name first, so a concurrent benchmark never reads half a file.
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        subprocess.run([PYTHON, str(ROOT / "benchmarks" / "generate_events.py"), str(count), str(partial)],
                       check=True, stdout=subprocess.DEVNULL, timeout=1800)
        os.replace(partial, path)
    return path


@dataclass
class Run:
    """One timed subprocess: wall seconds, CPU seconds (user+sys), peak RSS, its output."""

    wall: float
    cpu: float
    max_rss_mb: float
    stdout: str
    stderr: str
    returncode: int


def timed(args: list[str], timeout: float, root: Path = ROOT, environ: dict[str, str] | None = None) -> Run:
    """Run a command from ``root``, measuring its own wall time, CPU time and peak memory (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        process = subprocess.Popen(args, cwd=root, env=environ or env(), stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                raise TimeoutError(f"{args[:4]} ran over {timeout} s")
            time.sleep(0.05)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read(), err.read(),
                   process.returncode)


def run_pipeline(args: list[str], timeout: float = 3600) -> tuple[Run, dict]:
    """``python -m pipeline ARGS --summary ...``; returns the run and its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = Path(tmp) / "summary.json"
        run = timed([PYTHON, "-m", "pipeline", *args, "--summary", str(summary_path),
                     "--dead_letter", f"{tmp}/dead/"], timeout)
        if run.returncode != 0:
            raise RuntimeError(f"pipeline failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return run, json.loads(summary_path.read_text())


class Nginx:
    """nginx on 127.0.0.1 answering 200 to everything and logging the time and query of each."""

    def __init__(self, port: int = 18080) -> None:
        self.port = port
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(self.binary).exists():
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.log = self.dir / "access.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/track"

    def __enter__(self) -> Nginx:
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format query '$msec $request_uri';
    access_log {self.log} query buffer=1m flush=1s;
    keepalive_requests 10000000;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ default_type application/json; return 200 '{{"success":true}}'; }}
    }}
}}
""")
        self.process = subprocess.Popen([self.binary, "-c", str(conf), "-p", str(self.dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, 10)
        return self

    def received(self) -> list[float]:
        """Receive times of the requests logged so far (flushes the log first)."""
        self.process.send_signal(signal.SIGUSR1)  # reopen logs: flushes the buffer
        time.sleep(0.3)
        return [float(line.split(" ", 1)[0]) for line in self.log.read_text().splitlines() if line]

    def clear(self) -> None:
        self.received()
        self.log.write_text("")
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class StandInProcess:
    """The Woopra stand-in in its own process (``python -m woopra_standin``), recording to a file."""

    def __init__(self, delay_ms: float = 0.0) -> None:
        self.delay_ms = delay_ms
        self.dir = Path(tempfile.mkdtemp(prefix="bench-standin-"))
        self.record = self.dir / "received.jsonl"

    def __enter__(self) -> StandInProcess:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "woopra_standin", "--port", "0", "--quiet", "--delay-ms", str(self.delay_ms),
             "--record", str(self.record)],
            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        self.url = line.strip().rsplit(" ", 1)[-1]
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"stand-in did not start: {line!r}")
        return self

    def received(self) -> list[float]:
        """Receive times of the requests recorded so far."""
        if not self.record.exists():
            return []
        return [json.loads(line)["received_at"] for line in self.record.read_text().splitlines() if line]

    def clear(self) -> None:
        self.record.write_text("")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def delivery_rate(times: list[float]) -> float:
    """Requests per second between the first and the last request received."""
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def max_window(times: list[float], seconds: float = 1.0) -> int:
    """The most requests received in any window of ``seconds`` (sliding, from each request)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def median(values: list[float]) -> float:
    return statistics.median(values)


def request_urls(events_path: Path, endpoint: str, out: Path) -> int:
    """Write the full URL of every request the pipeline would send for ``events_path``."""
    sys.path.insert(0, str(ROOT))
    from yarl import URL

    from transforms.rules.consent import ConsentPolicy, decide_consent
    from transforms.rules.events import Event, RawInput, parse_input
    from transforms.rules.identity import VisitorIdentity, enrich_in_order
    from transforms.rules.woopra_mapping import WoopraRequest, WoopraSettings, build_request

    settings = WoopraSettings(project="bench.example", endpoint=endpoint)
    policy = ConsentPolicy()
    by_visitor: dict[str, list[Event]] = {}
    with events_path.open("rb") as handle:
        for line in handle:
            event = parse_input(RawInput(line))
            if isinstance(event, Event) and decide_consent(event.original, policy).outcome.allowed:
                by_visitor.setdefault(event.visitor, []).append(event)
    count = 0
    with out.open("w") as handle:
        for events in by_visitor.values():
            for event in enrich_in_order(events, VisitorIdentity(), 30 * 86_400_000)[0]:
                request = build_request(event, settings)
                if isinstance(request, WoopraRequest):
                    handle.write(str(URL(request.full_url(), encoded=True)) + "\n")
                    count += 1
    return count


def free_port() -> int:
    """A loopback TCP port nobody listens on now (so concurrent benchmarks never share an nginx)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_times(path: Path) -> list[float]:
    """Receive times from an nginx access log (``$msec ...`` lines), read line by line: for logs
    too big to hold as one string (a million requests is ~1 GB of query strings)."""
    times: list[float] = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                times.append(float(line.split(b" ", 1)[0]))
    return times


def drain_nginx_log(nginx: Nginx) -> list[float]:
    """Flush nginx's log, return its receive times (streamed) and empty it, ready for the next run."""
    nginx.process.send_signal(signal.SIGUSR1)  # reopen logs: flushes the buffer
    time.sleep(0.3)
    times = log_times(nginx.log)
    with nginx.log.open("w"):
        pass  # nginx appends (O_APPEND), so truncating in place is safe
    return times


def load_average() -> float:
    """The 1-minute load average (the machine is shared: reported beside every result)."""
    return round(os.getloadavg()[0], 2)


def summary_delivered(summary: dict) -> int:
    return int(summary.get("delivered_200", 0)) + int(summary.get("delivered_202", 0))


def busiest_window(times: list[float], seconds: float = 1.0) -> tuple[int, float]:
    """Like max_window, plus where that window starts: seconds after the first request."""
    times = sorted(times)
    best, best_start, start = 0, 0.0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        if end - start + 1 > best:
            best, best_start = end - start + 1, times[start] - times[0]
    return best, best_start


def timed_in(root: Path, args: list[str], timeout: float) -> Run:
    """Like ``timed``, run from another checkout of the project (``git worktree``): that checkout's
    code is imported, not this one's."""
    environ = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return timed(args, timeout, root, environ)


def run_pipeline_in(root: Path, args: list[str], timeout: float = 3600) -> tuple[Run, dict]:
    """``run_pipeline`` with the code of another checkout (``root``), e.g. an older commit."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = Path(tmp) / "summary.json"
        run = timed_in(root, [PYTHON, "-m", "pipeline", *args, "--summary", str(summary_path),
                              "--dead_letter", f"{tmp}/dead/"], timeout)
        if run.returncode != 0:
            raise RuntimeError(f"pipeline at {root} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return run, json.loads(summary_path.read_text())


def sorted_lines_md5(paths: list[Path]) -> tuple[str, int]:
    """MD5 of the lines of ``paths`` sorted bytewise (``LC_ALL=C sort | md5sum``), and how many
    lines: equal for two runs that wrote the same lines in any order, into any number of files."""
    import hashlib

    digest, lines = hashlib.md5(), 0
    with subprocess.Popen(["sort", "-S", "25%", *map(str, paths)], stdout=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C")) as sort:
        assert sort.stdout is not None
        for line in sort.stdout:
            digest.update(line)
            lines += 1
    if sort.returncode != 0:
        raise RuntimeError(f"sort failed ({sort.returncode})")
    return digest.hexdigest(), lines
