"""The delivery HTTP client against scripted servers on 127.0.0.1: the bytes it writes, the answers it
understands (lengths, chunks, close-delimited bodies, garbage), and when it reuses a connection."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.support.scripted_server import Answer, ScriptedServer
from transforms.delivery.http import MAX_BODY_BYTES, BadResponseError, HttpClient, Response, ServerDisconnectedError


def ok(body: bytes = b'{"success":true}', extra: bytes = b"") -> Answer:
    return lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def get_all(urls: list[str], user_agent: str = "Agent/1.0", timeout: float = 5.0) -> list[Response | BaseException]:
    async def run() -> list[Response | BaseException]:
        client = HttpClient(timeout=timeout, max_connections=4)
        try:
            results: list[Response | BaseException] = []
            for url in urls:  # one after another: the connection can be reused
                try:
                    results.append(await client.get(url, user_agent))
                except Exception as exc:  # noqa: BLE001 - what the caller sees
                    results.append(exc)
            return results
        finally:
            client.close()

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_writes_one_get_with_the_encoded_target_host_and_user_agent_byte_for_byte():
    with ScriptedServer(ok()) as server:
        [response] = get_all([server.url + "/track/ce/?project=a.example&ce_q=caf%C3%A9+%26+co"], "Mozilla/5.0 (X; é)")
    assert response == Response(200, '{"success":true}', None)
    port = server.url.rsplit(":", 1)[1]
    assert server.connections[0][0] == (
        b"GET /track/ce/?project=a.example&ce_q=caf%C3%A9+%26+co HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + port.encode() + b"\r\n"
        b"User-Agent: Mozilla/5.0 (X; \xc3\xa9)\r\n"
        b"Accept: */*\r\nAccept-Encoding: identity\r\n\r\n")


def test_keeps_the_connection_alive_between_requests():
    with ScriptedServer(ok()) as server:
        responses = get_all([server.url + f"/track?n={n}" for n in range(5)])
    assert [r.status for r in responses] == [200] * 5  # type: ignore[union-attr]
    assert len(server.connections) == 1 and len(server.connections[0]) == 5


def test_opens_a_new_connection_when_the_answer_says_close():
    with ScriptedServer(ok(extra=b"Connection: close\r\n"), close_after_answer=True) as server:
        responses = get_all([server.url + f"/track?n={n}" for n in range(3)])
    assert [r.status for r in responses] == [200] * 3  # type: ignore[union-attr]
    assert [len(c) for c in server.connections] == [1, 1, 1]


def test_reads_chunked_and_close_delimited_bodies_and_retry_after():
    chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n" \
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    with ScriptedServer(lambda _: chunked) as server:
        [first] = get_all([server.url + "/track"])
    assert first == Response(503, "hello world", "7")
    close_delimited = b"HTTP/1.0 429 Too Many\r\nRetry-After: 2\r\n\r\nslow down"
    with ScriptedServer(lambda _: close_delimited, close_after_answer=True) as server:
        [second] = get_all([server.url + "/track"])
    assert second == Response(429, "slow down", "2")


def test_keeps_at_most_max_body_bytes_of_a_body():
    with ScriptedServer(ok(b"x" * (MAX_BODY_BYTES + 10_000))) as server:
        [response] = get_all([server.url + "/track"])
    assert response.status == 200 and response.body == "x" * MAX_BODY_BYTES  # type: ignore[union-attr]


def test_garbage_is_a_bad_response_and_a_closed_connection_a_disconnect():
    with ScriptedServer(lambda _: b"HTTP/1.1 2x0 OK\r\n\r\n") as server:
        [garbled] = get_all([server.url + "/track"])
    assert isinstance(garbled, BadResponseError)
    with ScriptedServer(lambda _: None) as server:
        [dropped] = get_all([server.url + "/track"])
    assert isinstance(dropped, ServerDisconnectedError)
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"succ"
    with ScriptedServer(lambda _: truncated, close_after_answer=True) as server:
        [cut] = get_all([server.url + "/track"])
    assert isinstance(cut, ServerDisconnectedError)


def test_a_slow_answer_times_out_and_its_connection_is_not_reused():
    answered = []

    def slow_then_fast(request: bytes) -> bytes:
        if not answered:
            answered.append(request)
            time.sleep(0.6)
        return ok()(request)  # type: ignore[return-value]

    with ScriptedServer(slow_then_fast) as server:
        timed_out, fine = get_all([server.url + "/track?n=1", server.url + "/track?n=2"], timeout=0.3)
    assert isinstance(timed_out, TimeoutError) and "0.3 s" in str(timed_out)
    assert isinstance(fine, Response) and fine.status == 200
    assert len(server.connections) == 2  # the late answer to n=1 was never read as n=2's


@pytest.mark.parametrize("url, user_agent", [
    ("http://127.0.0.1:9/track?a=b c", "Agent"),  # a space would end the request line
    ("http://127.0.0.1:9/track?a=\r\nX-Injected: 1", "Agent"),
    ("http://127.0.0.1:9/track?a=b", "Agent\r\nX-Injected: 1"),
    ("http://127.0.0.1:9/track?a=caf\u00e9", "Agent"),  # not percent-encoded
    ("ftp://127.0.0.1/track", "Agent"),
    ("http://user:secret@127.0.0.1/track", "Agent"),
])
def test_a_request_that_cannot_be_written_fails_before_anything_is_sent(url, user_agent):
    [error] = get_all([url], user_agent)
    assert isinstance(error, ValueError)  # UnicodeEncodeError is one too


def test_refused_connection_is_an_os_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    [refused] = get_all([f"http://127.0.0.1:{port}/track"])
    assert isinstance(refused, ConnectionRefusedError)
