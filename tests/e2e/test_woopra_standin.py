"""Tests for the local Woopra tracking-API stand-in (``woopra_standin``).

Everything talks to 127.0.0.1 only, and every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from woopra_standin import Rule, StandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()


def _ce(
    server: StandIn, session: requests.Session | None = None, **params: str
) -> requests.Response:
    """Send a custom-event tracking call, optionally on a keep-alive session."""
    client = session or requests
    return client.get(f"{server.url}/ce/", params=params, timeout=TIMEOUT)


def _control(server: StandIn, name: str) -> str:
    return f"http://127.0.0.1:{server.port}/_control/{name}"


def _raw_exchange(port: int, payload: bytes) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        for _ in range(1000):  # bounded; recv itself times out after TIMEOUT
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# ----- recording ---------------------------------------------------------------------


def test_records_path_params_query_and_headers(standin: StandIn) -> None:
    query = "project=shop&event=signup&cv_email=a%40b.com&blank=&dup=1&dup=2"
    before = time.time()
    resp = requests.get(
        f"{standin.url}/ce/?{query}", headers={"X-Trace-Id": "abc"}, timeout=TIMEOUT
    )
    after = time.time()

    assert resp.status_code == 200
    assert resp.json() == {"success": True}
    assert resp.headers["Content-Type"] == "application/json"
    [record] = standin.requests
    assert record["path"] == "/track/ce/"
    assert record["query"] == query
    assert record["params"] == {
        "project": "shop",
        "event": "signup",
        "cv_email": "a@b.com",
        "blank": "",
        "dup": "2",  # a repeated key keeps its last value
    }
    assert record["headers"]["x-trace-id"] == "abc"
    assert record["headers"]["host"] == f"127.0.0.1:{standin.port}"
    assert before <= record["received_at"] <= after
    assert record["status"] == 200
    assert record["attempt"] == 1


def test_attempt_counts_same_path_and_query(standin: StandIn) -> None:
    identify = f"{standin.url}/identify/"
    for _ in range(2):
        requests.get(identify, params={"project": "p", "cv_id": "1"}, timeout=TIMEOUT)
    requests.get(identify, params={"project": "p", "cv_id": "2"}, timeout=TIMEOUT)
    _ce(standin, project="p", cv_id="1")  # same query, different path

    records = standin.requests
    assert [r["path"] for r in records] == ["/track/identify/"] * 3 + ["/track/ce/"]
    assert [r["attempt"] for r in records] == [1, 2, 1, 1]


def test_wait_for_is_bounded(standin: StandIn) -> None:
    assert standin.wait_for(1, timeout=0.05) is False
    _ce(standin, event="e")
    assert standin.wait_for(1, timeout=TIMEOUT) is True


def test_record_path_appends_json_lines(tmp_path: Path) -> None:
    record_path = tmp_path / "requests.jsonl"
    with StandIn(record_path=str(record_path)) as server:
        _ce(server, event="one")
        _ce(server, event="two")
    lines = [json.loads(line) for line in record_path.read_text().splitlines()]
    assert [line["params"]["event"] for line in lines] == ["one", "two"]
    assert all(line["status"] == 200 for line in lines)


# ----- HTTP/1.1 connection handling ---------------------------------------------------


def test_keep_alive_reuses_one_connection(standin: StandIn) -> None:
    before = standin.connections
    with requests.Session() as session:
        for i in range(20):
            assert _ce(standin, session, event=f"e{i}").status_code == 200
    assert standin.wait_for(20, timeout=TIMEOUT)
    assert standin.connections - before == 1


def test_connection_close_header_is_honoured(standin: StandIn) -> None:
    before = standin.connections
    with requests.Session() as session:
        session.headers["Connection"] = "close"
        for i in range(3):
            resp = _ce(standin, session, event=f"e{i}")
            assert resp.status_code == 200
            assert resp.headers["Connection"] == "close"
    assert standin.connections - before == 3


def test_http10_gets_answer_then_close(standin: StandIn) -> None:
    # _raw_exchange returns only once the server closes: HTTP/1.0 has no keep-alive by default.
    raw = _raw_exchange(
        standin.port, b"GET /track/ce/?event=old HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    assert re.match(rb"HTTP/1\.[01] 200 OK\r\n", raw), raw
    assert raw.endswith(b'{"success":true}')
    assert [r["params"]["event"] for r in standin.requests] == ["old"]


def test_request_body_is_discarded_and_connection_kept(standin: StandIn) -> None:
    # Two requests in one write: the first body must be skipped to find the second.
    raw = _raw_exchange(
        standin.port,
        b"POST /track/ce/?event=a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /track/ce/?event=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert [r["params"]["event"] for r in standin.requests] == ["a", "b"]
    assert [r["method"] for r in standin.requests] == ["POST", "GET"]


def test_malformed_request_line_gets_400(standin: StandIn) -> None:
    raw = _raw_exchange(standin.port, b"nonsense\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", raw), raw
    assert standin.requests == []


# ----- fault injection ---------------------------------------------------------------


def test_rule_503_then_200_for_the_same_query(standin: StandIn) -> None:
    standin.set_rules([Rule(match={"event": "flaky"}, statuses=[503, 200])])
    assert _ce(standin, project="p", event="flaky").status_code == 503
    assert _ce(standin, project="p", event="flaky").status_code == 200
    assert _ce(standin, project="p", event="flaky").status_code == 200  # last repeats
    assert _ce(standin, project="p", event="fine").status_code == 200  # no match

    records = standin.requests
    assert [r["status"] for r in records] == [503, 200, 200, 200]
    assert [r["attempt"] for r in records] == [1, 2, 3, 1]


def test_429_carries_retry_after_only_on_failure(standin: StandIn) -> None:
    standin.set_rules(
        [Rule(match={"_path": "/ce/"}, statuses=[429, 200], retry_after="7")]
    )
    first = _ce(standin, event="busy")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    second = _ce(standin, event="busy")
    assert second.status_code == 200
    assert "Retry-After" not in second.headers
    # The _path rule does not cover identify calls.
    identify = requests.get(f"{standin.url}/identify/", timeout=TIMEOUT)
    assert identify.status_code == 200


def test_drop_attempts_close_without_answer_then_succeed(standin: StandIn) -> None:
    standin.set_rules([Rule(match={"event": "lost"}, drop_attempts=2)])
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            _ce(standin, event="lost")
    assert _ce(standin, event="lost").status_code == 200
    records = standin.requests
    assert [r["status"] for r in records] == [None, None, 200]
    assert [r["attempt"] for r in records] == [1, 2, 3]


def test_drop_attempts_then_status_script(standin: StandIn) -> None:
    standin.set_rules([Rule(drop_attempts=1, statuses=[503, 200], body="busy")])
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            _ce(standin, session, event="x")
        retried = _ce(standin, session, event="x")
        assert (retried.status_code, retried.text) == (503, "busy")
        assert retried.headers["Content-Type"].startswith("text/plain")
        assert _ce(standin, session, event="x").status_code == 200


def test_rule_delay_ms_delays_the_answer(standin: StandIn) -> None:
    standin.set_rules([Rule(match={"event": "slow"}, delay_ms=200)])
    started = time.monotonic()
    assert _ce(standin, event="slow").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_server_default_delay_ms() -> None:
    with StandIn(delay_ms=150) as server:
        started = time.monotonic()
        assert _ce(server, event="any").status_code == 200
        assert time.monotonic() - started >= 0.15


def test_many_concurrent_delayed_requests(standin: StandIn) -> None:
    standin.set_rules([Rule(delay_ms=200)])
    count = 200

    async def one(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", standin.port)
        writer.write(f"GET /track/ce/?n={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return head

    async def all_of_them() -> list[bytes]:
        jobs = asyncio.gather(*(one(i) for i in range(count)))
        return await asyncio.wait_for(jobs, timeout=30)

    heads = asyncio.run(all_of_them())
    assert all(head.startswith(b"HTTP/1.1 200 OK") for head in heads)
    assert standin.wait_for(count, timeout=TIMEOUT)


def test_rule_from_dict_coerces_and_validates() -> None:
    rule = Rule.from_dict(
        {"match": {"n": 1}, "statuses": ["503"], "retry_after": 5, "drop_attempts": "1"}
    )
    assert rule == Rule(
        match={"n": "1"}, statuses=[503], retry_after="5", drop_attempts=1
    )
    with pytest.raises(ValueError, match="unknown rule keys"):
        Rule.from_dict({"status": [500]})
    with pytest.raises(ValueError, match="non-empty"):
        Rule(statuses=[])


# ----- control API -------------------------------------------------------------------


def test_control_api(standin: StandIn) -> None:
    _ce(standin, project="p", event="a")
    listed = requests.get(_control(standin, "requests"), timeout=TIMEOUT).json()
    assert [(r["path"], r["params"]) for r in listed] == [
        ("/track/ce/", {"project": "p", "event": "a"})
    ]
    stats = requests.get(_control(standin, "stats"), timeout=TIMEOUT).json()
    assert stats["count"] == 1  # control calls are not recorded

    payload: dict[str, Any] = {
        "rules": [{"match": {"event": "b"}, "statuses": [500]}],
        "delay_ms": 0,
    }
    put = requests.put(_control(standin, "rules"), json=payload, timeout=TIMEOUT)
    assert put.status_code == 200
    current = requests.get(_control(standin, "rules"), timeout=TIMEOUT).json()
    assert current["rules"][0]["statuses"] == [500]
    assert _ce(standin, project="p", event="b").status_code == 500

    reset = requests.post(_control(standin, "reset"), timeout=TIMEOUT)
    assert reset.status_code == 200
    assert (
        requests.get(_control(standin, "stats"), timeout=TIMEOUT).json()["count"] == 0
    )
    _ce(standin, project="p", event="a")
    assert standin.requests[0]["attempt"] == 1  # attempt counters were reset too


def test_control_api_errors(standin: StandIn) -> None:
    bad_key = {"rules": [{"statuz": [500]}]}
    resp = requests.put(_control(standin, "rules"), json=bad_key, timeout=TIMEOUT)
    assert resp.status_code == 400
    resp = requests.put(_control(standin, "rules"), data=b"{not json", timeout=TIMEOUT)
    assert resp.status_code == 400
    assert requests.get(_control(standin, "reset"), timeout=TIMEOUT).status_code == 405
    assert requests.get(_control(standin, "nope"), timeout=TIMEOUT).status_code == 404


def test_start_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match=r"(?i)in use"):
            StandIn(port=busy.getsockname()[1]).start()


# ----- CLI ---------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line from ``proc`` without blocking past ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output from the CLI within {timeout}s")
    return proc.stdout.readline()


@pytest.mark.parametrize(
    ("signum", "loudness"),
    [(signal.SIGTERM, "--quiet"), (signal.SIGINT, "--verbose"), (signal.SIGINT, "")],
)
def test_cli_prints_url_serves_and_stops(
    tmp_path: Path, signum: signal.Signals, loudness: str
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"rules": [{"match": {"event": "flaky"}, "statuses": [503, 200]}]})
    )
    record = tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", "woopra_standin", "--port", "0"]
    command += ["--rules", str(rules), "--record", str(record)]
    command += [loudness] if loudness else []
    proc = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, timeout=30)
        match = re.fullmatch(
            r"woopra stand-in listening on (http://127\.0\.0\.1:\d+/track)",
            line.strip(),
        )
        assert match, f"unexpected first line {line!r}"
        url = match.group(1)
        statuses = [
            requests.get(f"{url}/ce/", params={"event": "flaky"}, timeout=TIMEOUT)
            for _ in range(2)
        ]
        assert [resp.status_code for resp in statuses] == [503, 200]
        if not loudness:  # by default a count per second, not a line per request
            assert "received 2 requests" in _read_stderr_line(proc, timeout=30)

        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)

    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["status"] for r in recorded] == [503, 200]
    assert ("/track/ce/" in stderr) is (loudness == "--verbose")


def _read_stderr_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The CLI's next stderr line, waiting at most ``timeout`` seconds."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no stderr from the CLI within {timeout}s")
    return proc.stderr.readline()


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m woopra_standin --port 0 ARGS``; return it and the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "woopra_standin", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, timeout=30)
    except AssertionError:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        raise
    match = re.fullmatch(r"woopra stand-in listening on (https?://127\.0\.0\.1:\d+/track)", line.strip())
    assert match, f"unexpected first line {line!r}"
    return proc, match.group(1)


def _stop_cli(proc: subprocess.Popen[str]) -> str:
    """Stop the CLI with SIGTERM; return its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    return stderr


VISITOR = {"cv_email": "jane.doe@example.com", "ip": "203.0.113.50", "cookie": "AH47DHS5SF182DIQZJD"}


@pytest.mark.parametrize("show_pii", [False, True])
def test_cli_log_redacts_emails_ips_and_cookies_unless_asked(tmp_path: Path, show_pii: bool) -> None:
    record = tmp_path / "requests.jsonl"
    proc, url = _start_cli("--verbose", "--record", str(record), *(["--show-pii"] if show_pii else []))
    try:
        reply = requests.get(f"{url}/ce/", params={"event": "purchase", **VISITOR}, timeout=TIMEOUT)
        assert reply.status_code == 200
    finally:
        stderr = _stop_cli(proc)
    [line] = [line for line in stderr.splitlines() if "/track/ce/" in line]
    clear = ("jane.doe", "203.0.113.50", "AH47DHS5SF182DIQZJD")
    redacted = ("j***@example.com", "203.0.113.x", "AH47***")
    assert "event=purchase" in line and line.endswith("-> 200 (#1)")
    if show_pii:
        assert all(value in line for value in ("jane.doe%40example.com", "203.0.113.50", "AH47DHS5SF182DIQZJD"))
        assert not any(value in line for value in redacted)
    else:
        assert not any(value in line for value in clear), line
        assert all(value in line.replace("%40", "@") for value in redacted), line
    # The recording is data for tests and replays: always in clear.
    [recorded] = [json.loads(line) for line in record.read_text().splitlines()]
    assert {key: recorded["params"][key] for key in VISITOR} == VISITOR


def test_cli_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    from tests.support.self_signed import write_self_signed

    cert, key = write_self_signed(tmp_path)
    proc, url = _start_cli("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/ce/", params={"event": "untrusted"}, timeout=TIMEOUT)
        trusted = requests.get(f"{url}/ce/", params={"event": "trusted"}, verify=str(cert), timeout=TIMEOUT)
        assert (trusted.status_code, trusted.json()) == (200, {"success": True})
        port = url.split(":")[2].split("/")[0]
        recorded = requests.get(f"https://127.0.0.1:{port}/_control/requests", verify=str(cert), timeout=TIMEOUT)
        assert [r["params"]["event"] for r in recorded.json()] == ["trusted"]
    finally:
        _stop_cli(proc)


def test_cli_needs_both_tls_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "woopra_standin", "--port", "0", "--tls-cert", "x.pem"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr


def test_cli_records_into_a_folder_it_creates_and_names_a_record_file_it_cannot_open(tmp_path: Path) -> None:
    record = tmp_path / "out" / "received.jsonl"  # out/ does not exist yet, as on a fresh clone
    proc, url = _start_cli("--quiet", "--record", str(record))
    try:
        assert requests.get(f"{url}/ce/", params={"project": "p", "event": "one"}, timeout=TIMEOUT).ok
    finally:
        _stop_cli(proc)
    assert [json.loads(line)["params"]["event"] for line in record.read_text().splitlines()] == ["one"]

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "woopra_standin", "--port", "0", "--record",
                           str(blocker / "received.jsonl")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    # makedirs meets a file where the folder should be: one line naming --record, not the port.
    assert done.stderr.strip() == f"woopra stand-in could not open --record {blocker / 'received.jsonl'}: File exists"
