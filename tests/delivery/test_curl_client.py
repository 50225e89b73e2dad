"""The delivery HTTP client (libcurl) against scripted servers on 127.0.0.1: the bytes it writes, the
answers it understands (1xx, lengths, chunks, close-delimited bodies, garbage, endless headers), when
it reuses a connection, TLS, proxies, IPv6 literals, and what it refuses to send."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import time

import pytest

from tests.support.connect_proxy import ConnectProxy
from tests.support.scripted_server import Answer, ScriptedServer
from tests.support.self_signed import write_ca_and_certificate
from transforms.delivery.curl_client import (
    MAX_BODY_BYTES,
    BadResponseError,
    HttpClient,
    Response,
    ServerDisconnectedError,
    TransportError,
)

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
                   "ALL_PROXY", "all_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def ok(body: bytes = b'{"success":true}', extra: bytes = b"") -> Answer:
    return lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def echo_n(status_line: bytes = b"HTTP/1.1 200 OK", before: bytes = b"") -> Answer:
    """Answers each request with its own ``n`` query value as the body, after ``before``."""

    def answer(request: bytes) -> bytes:
        n = request.split(b"n=", 1)[1].split(b" ", 1)[0]
        return before + status_line + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(n), n)

    return answer


def get_all(urls: list[str], user_agent: str = "Agent/1.0", timeout: float = 5.0,
            ca_file: str | None = None) -> list[Response | BaseException]:
    async def run() -> list[Response | BaseException]:
        client = HttpClient(timeout=timeout, max_connections=4, ca_file=ca_file)
        try:
            results: list[Response | BaseException] = []
            for url in urls:  # one after another: the connection can be reused
                try:
                    results.append(await client.get(url, user_agent))
                except Exception as exc:  # noqa: BLE001 - what the caller sees
                    results.append(exc)
            return results
        finally:
            await client.aclose()

    return asyncio.run(asyncio.wait_for(run(), 30))


def tls_server_context(cert, key) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


def test_writes_one_get_with_the_encoded_target_host_and_user_agent_byte_for_byte():
    with ScriptedServer(ok()) as server:
        [response] = get_all([server.url + "/track/ce/?project=a.example&ce_q=caf%C3%A9+%26+co"], "Mozilla/5.0 (X; é)")
    assert response == Response(200, '{"success":true}', None)
    assert server.connections[0][0] == (
        b"GET /track/ce/?project=a.example&ce_q=caf%C3%A9+%26+co HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(server.port).encode() + b"\r\n"
        b"User-Agent: Mozilla/5.0 (X; \xc3\xa9)\r\n"
        b"Accept: */*\r\nAccept-Encoding: identity\r\n\r\n")


@pytest.mark.parametrize("informational", [
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
])
def test_a_1xx_answer_is_not_final_and_every_request_gets_its_own_answer(informational):
    with ScriptedServer(echo_n(before=informational)) as server:
        responses = get_all([server.url + f"/track?n={n}" for n in range(3)])
    assert responses == [Response(200, str(n), None) for n in range(3)]
    assert [len(c) for c in server.connections] == [3]  # one connection, answers in step


def test_keeps_the_connection_alive_between_requests():
    with ScriptedServer(echo_n()) as server:
        responses = get_all([server.url + f"/track?n={n}" for n in range(5)])
    assert responses == [Response(200, str(n), None) for n in range(5)]
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


def test_keeps_at_most_max_body_bytes_of_a_body_and_the_connection():
    with ScriptedServer(ok(b"x" * (MAX_BODY_BYTES + 10_000))) as server:
        first, second = get_all([server.url + "/track?n=1", server.url + "/track?n=2"])
    assert first == second == Response(200, "x" * MAX_BODY_BYTES, None)
    assert len(server.connections) == 1


def test_a_redirect_is_an_answer_not_followed_and_no_cookie_is_kept():
    answer = (b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: visitor=abc; Path=/\r\n"
              b"Content-Length: 0\r\n\r\n")
    with ScriptedServer(lambda _: answer) as server:
        responses = get_all([server.url + "/track?n=1", server.url + "/track?n=2"])
    assert responses == [Response(302, "", None)] * 2
    requests = server.connections[0]
    assert len(requests) == 2 and all(b"/elsewhere" not in r and b"Cookie" not in r for r in requests)


def test_an_endless_header_line_is_a_bad_response_without_growing_memory():
    # 20 MB of one header line, written as long as the client reads.
    endless = b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 20_000_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with ScriptedServer(lambda _: endless) as server:
        [error] = get_all([server.url + "/track"])
    assert isinstance(error, BadResponseError) and "too large" in str(error)
    assert time.monotonic() - started < 5
    # The server's 20 MB reply is in this process too; the client added no copy of it.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 45_000  # KiB


def test_garbage_is_a_bad_response_and_a_closed_connection_a_disconnect():
    with ScriptedServer(lambda _: b"HTTP/1.1 2x0 OK\r\n\r\n") as server:
        [garbled] = get_all([server.url + "/track"])
    assert isinstance(garbled, BadResponseError)
    with ScriptedServer(lambda _: None) as server:
        [dropped] = get_all([server.url + "/track"])
    assert isinstance(dropped, ServerDisconnectedError) and isinstance(dropped, OSError)


def test_a_truncated_answer_is_a_disconnect_not_a_response():
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"succ"
    with ScriptedServer(lambda _: truncated, close_after_answer=True) as server:
        [cut] = get_all([server.url + "/track"])
    assert isinstance(cut, ServerDisconnectedError)
    chunked_cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"succ"
    with ScriptedServer(lambda _: chunked_cut, close_after_answer=True) as server:
        [cut] = get_all([server.url + "/track"])
    assert isinstance(cut, ServerDisconnectedError)


def test_a_slow_answer_times_out_and_its_late_answer_is_never_read_as_the_next_requests():
    answered = []

    def slow_then_fast(request: bytes) -> bytes:
        answered.append(request)
        if len(answered) == 1:
            time.sleep(0.6)
        return echo_n()(request)  # type: ignore[return-value]

    with ScriptedServer(slow_then_fast) as server:
        timed_out, fine = get_all([server.url + "/track?n=1", server.url + "/track?n=2"], timeout=0.3)
    assert isinstance(timed_out, TimeoutError) and "0.3 s" in str(timed_out)
    assert fine == Response(200, "2", None)
    assert len(server.connections) == 2  # the late answer to n=1 went to a connection nobody reads


@pytest.mark.parametrize("url, user_agent", [
    ("http://127.0.0.1:9/track?a=b c", "Agent"),  # a space would end the request line
    ("http://127.0.0.1:9/track?a=\r\nX-Injected: 1", "Agent"),
    ("http://127.0.0.1\r\nX-Injected: 1/track?a=b", "Agent"),  # CR/LF must not reach Host
    ("http://127.0.0.1:9/track?a=b", "Agent\r\nX-Injected: 1"),
    ("http://127.0.0.1:9/track?a=b", "Agent\x01"),
    ("http://127.0.0.1:9/track?a=caf\u00e9", "Agent"),  # not percent-encoded
    ("http://[::1/track", "Agent"),
    ("http://127.0.0.1:8_0/track", "Agent"),
    ("http://127.0.0.1:70000/track", "Agent"),
    ("ftp://127.0.0.1/track", "Agent"),
    ("file:///etc/passwd", "Agent"),
    ("http://user:secret@127.0.0.1/track", "Agent"),
])
def test_a_request_that_cannot_be_written_fails_before_anything_is_sent(url, user_agent):
    [error] = get_all([url], user_agent)
    assert isinstance(error, ValueError)


def test_a_tab_in_the_user_agent_is_sent_as_it_is():
    with ScriptedServer(ok()) as server:
        [response] = get_all([server.url + "/track"], "Agent\twith tab")
    assert response.status == 200  # type: ignore[union-attr]
    assert b"User-Agent: Agent\twith tab\r\n" in server.connections[0][0]


def test_refused_connection_and_unknown_host_are_transport_errors():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # A 64-character label is refused by the resolver itself: nothing leaves the machine.
    refused, unknown = get_all([f"http://127.0.0.1:{port}/track", f"http://{'a' * 64}.invalid/track"])
    assert isinstance(refused, TransportError) and isinstance(refused, OSError)
    assert isinstance(unknown, TransportError) and "resolve" in str(unknown)


def test_an_ipv6_literal_endpoint():
    with ScriptedServer(ok(), host="::1") as server:
        [response] = get_all([server.url + "/track?n=1"])
    assert response == Response(200, '{"success":true}', None)
    assert f"Host: [::1]:{server.port}\r\n".encode() in server.connections[0][0]


def test_tls_verifies_the_certificate_and_its_host_name(tmp_path):
    ca, cert, key = write_ca_and_certificate(tmp_path, ["127.0.0.1"])
    with ScriptedServer(ok(), tls=tls_server_context(cert, key)) as server:
        [trusted] = get_all([server.url + "/track"], ca_file=str(ca))
        [untrusted] = get_all([server.url + "/track"])  # the system's CAs do not know this one
    assert trusted == Response(200, '{"success":true}', None)
    assert isinstance(untrusted, ssl.SSLCertVerificationError)


def test_tls_refuses_a_certificate_for_another_host_name_from_a_trusted_ca(tmp_path):
    ca, cert, key = write_ca_and_certificate(tmp_path, ["woopra.example"])
    with ScriptedServer(ok(), tls=tls_server_context(cert, key)) as server:
        [error] = get_all([server.url + "/track"], ca_file=str(ca))
        assert all(requests == [] for requests in server.connections)  # the handshake failed: nothing sent
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error) and "127.0.0.1" in str(error)


def test_https_goes_through_the_https_proxy_in_a_connect_tunnel(tmp_path, monkeypatch):
    ca, cert, key = write_ca_and_certificate(tmp_path, ["127.0.0.1"])
    with ConnectProxy() as proxy, ScriptedServer(echo_n(), tls=tls_server_context(cert, key)) as server:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        responses = get_all([server.url + "/track?n=1", server.url + "/track?n=2"], ca_file=str(ca))
    assert responses == [Response(200, "1", None), Response(200, "2", None)]
    assert proxy.request_lines == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]  # one tunnel, kept alive


def test_http_goes_through_the_http_proxy(monkeypatch):
    with ConnectProxy() as proxy, ScriptedServer(ok()) as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        [response] = get_all([server.url + "/track?n=1"])
    assert response == Response(200, '{"success":true}', None)
    assert proxy.request_lines == [f"GET {server.url}/track?n=1 HTTP/1.1"]
    assert server.connections[0][0].startswith(b"GET /track?n=1 HTTP/1.1\r\n")


def test_no_proxy_sends_straight_to_the_host(monkeypatch):
    with ConnectProxy() as proxy, ScriptedServer(ok()) as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        [response] = get_all([server.url + "/track"])
    assert response.status == 200  # type: ignore[union-attr]
    assert proxy.request_lines == []


def test_a_proxy_that_refuses_is_a_transport_error(monkeypatch):
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        [error] = get_all(["https://woopra.example/track"])  # the proxy goes only to loopback: 403
    assert isinstance(error, TransportError) and "403" in str(error)
    assert proxy.request_lines == ["CONNECT woopra.example:443 HTTP/1.1"]
