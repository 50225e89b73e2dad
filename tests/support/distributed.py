"""Beam's portable runner services as separate processes, and measures of what the stand-in received.

``BeamServices`` starts Beam's local job service and an external SDK worker pool the way
docs/development.md#distributed-runs tells a user to (``python -m ...`` on free loopback ports),
so ``python -m pipeline --runner=PortableRunner --environment_type=EXTERNAL`` runs the job in a
worker process that is neither the launcher nor a child of it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOB_SERVICE_MODULE = "apache_beam.runners.portability.local_job_service_main"
WORKER_POOL_MODULE = "apache_beam.runners.worker.worker_pool_main"
READY_SECONDS = 60.0  # both services answer within a few seconds; a busy 2-core machine may take longer
START_ATTEMPTS = 3  # a free port can be taken by someone else between choosing it and binding it


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Service:
    """One Beam service process: its port and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        """End the service and the SDK workers it started (its own process group), bounded in time."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        else:
            # The service is gone; the workers it started may not be.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_service(name: str, module: str, port_flag: str, workdir: Path, env: dict[str, str]) -> Service:
    """Start ``python -m module port_flag=PORT`` on a free port and wait until the port accepts connections."""
    failures: list[str] = []
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        log = workdir / f"{name}-{attempt}.log"
        with log.open("wb") as out:
            # Its own session, so stop() ends the SDK workers the pool starts too. The umask is a
            # shell's usual one: the job must not rely on the worker's to keep its files private.
            process = subprocess.Popen([sys.executable, "-m", module, f"{port_flag}={port}"], cwd=workdir,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                       umask=0o022)
        service = Service(name, process, port, log)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline and process.poll() is None and not _accepts(port):
            time.sleep(0.2)
        if process.poll() is None and _accepts(port):
            return service
        service.stop()
        failures.append(f"port {port}: {log.read_text(errors='replace')[-2000:]}")
    raise RuntimeError(f"Beam's {name} did not start listening within {READY_SECONDS:g} s:\n" + "\n".join(failures))


class BeamServices:
    """Beam's job service and an external SDK worker pool, each its own process, stopped on exit."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.services: list[Service] = []

    def __enter__(self) -> BeamServices:
        try:
            self.services.append(start_service("job-service", JOB_SERVICE_MODULE, "--port", self.workdir, self.env))
            self.services.append(start_service("worker-pool", WORKER_POOL_MODULE, "--service_port", self.workdir,
                                               self.env))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every service started, the worker pool first."""
        for service in reversed(self.services):
            service.stop()

    @property
    def job_endpoint(self) -> str:
        """``--job_endpoint``."""
        return f"127.0.0.1:{self.services[0].port}"

    @property
    def worker_pool(self) -> str:
        """``--environment_config`` for ``--environment_type=EXTERNAL``."""
        return f"127.0.0.1:{self.services[1].port}"

    def logs(self) -> str:
        """Both services' output, for a failure message."""
        return "\n".join(f"--- {s.name} ---\n{s.log.read_text(errors='replace')[-4000:]}" for s in self.services)


RequestKey = tuple[str, tuple[tuple[str, str], ...], str]


def request_key(record: dict[str, Any]) -> RequestKey:
    """What identifies a request the stand-in received: path, every parameter, the User-Agent."""
    return record["path"], tuple(sorted(record["params"].items())), record["headers"].get("user-agent", "")


def request_multiset(records: Iterable[dict[str, Any]]) -> Counter[RequestKey]:
    """The requests as a multiset: order does not matter, a repeat counts twice."""
    return Counter(request_key(record) for record in records)


def job_rate(received_at: Sequence[float]) -> float:
    """Requests per second from receive times: (n - 1) / (last - first), the n requests' n - 1 gaps."""
    times = sorted(received_at)
    if len(times) < 2 or times[-1] <= times[0]:
        raise ValueError("a rate needs at least two requests received at different times")
    return (len(times) - 1) / (times[-1] - times[0])


def write_track_events(path: Path, count: int, visitors: int) -> Path:
    """``count`` consented track events of ``visitors`` visitors, each with its sequence number as a property."""
    with path.open("w", encoding="utf-8") as out:
        for seq in range(count):
            visitor = seq % visitors
            event = {
                "type": "track", "event": "Product Viewed", "messageId": f"distributed-{seq:06d}",
                "anonymousId": f"visitor-{visitor:04d}",
                "timestamp": f"2026-03-02T{9 + seq // 3600:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}.000Z",
                "properties": {"seq": seq, "product_id": f"SKU-{seq % 200:04d}"},
                "context": {"ip": "203.0.113.7", "userAgent": f"Mozilla/5.0 (visitor {visitor})",
                            "consent": {"analytics": True}},
                "vendor_ids": {"woopra_cookie": f"COOKIE{visitor:06d}"},
            }
            out.write(json.dumps(event) + "\n")
    return path
