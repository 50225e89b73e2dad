"""A scripted HTTP server on 127.0.0.1 (or ::1) for the delivery client's tests: answers whatever bytes
a test gives it, so it can answer what no real server would (cut short, garbled, close-delimited),
over plain TCP or TLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from tests.support.loopback_server import LoopbackServer

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> what to write back (None: close at once)


class ScriptedServer(LoopbackServer):
    """Accepts connections and answers each request with ``answer(request)``; records requests per connection."""

    def __init__(self, answer: Answer, close_after_answer: bool = False, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.tls = tls
        self.connections: list[list[bytes]] = []
        super().__init__(host)
        self.url = f"{'https' if tls else 'http'}://{self.authority}"
        self.start()

    def handle(self, conn: socket.socket) -> None:
        requests: list[bytes] = []
        self.connections.append(requests)
        self._serve(conn, requests)

    def _serve(self, conn: socket.socket, requests: list[bytes]) -> None:
        conn.settimeout(5)
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                return  # the client refused the certificate
        with conn:
            buffer = b""
            for _ in range(100):  # bounded: requests per connection
                while b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                request, _, buffer = buffer.partition(b"\r\n\r\n")
                requests.append(request + b"\r\n\r\n")
                reply = self.answer(request)
                if reply is None:
                    return
                try:
                    conn.sendall(reply)
                except OSError:
                    return  # the client gave up (a header too large, a timeout)
                if self.close_after_answer:
                    return
