"""A forward proxy on 127.0.0.1 for the delivery client's tests: ``CONNECT host:port`` opens a tunnel
(as for ``https://`` through ``HTTPS_PROXY``), and a request in absolute form (``GET http://host/...``,
as for ``http://`` through ``HTTP_PROXY``) is passed on to its host. It records the request line of
each, and goes only to 127.0.0.1 or ::1."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from tests.support.loopback_server import LoopbackServer

LOOPBACK = ("127.0.0.1", "::1")


class ConnectProxy(LoopbackServer):
    """Accepts connections on 127.0.0.1; ``request_lines`` holds the first line of each."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        super().__init__()
        self.url = f"http://{self.authority}"
        self.start()

    def handle(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.request_lines.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                rest = b""
            else:  # absolute form: the origin's request line is the path only
                parts = urlsplit(target)
                host, port = parts.hostname or "", str(parts.port or 80)
                origin_target = parts.path + (f"?{parts.query}" if parts.query else "")
                rest = head.replace(target.encode("latin-1"), origin_target.encode("latin-1"), 1)
            host = host.strip("[]")
            if host not in LOOPBACK:
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    upstream.sendall(rest)
                _pipe_both_ways(client, upstream)


def _pipe_both_ways(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes between two sockets until either side closes (bounded by their 5 s timeouts)."""

    def copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    back = threading.Thread(target=copy, args=(other, one), daemon=True)
    back.start()
    copy(one, other)
    back.join(timeout=10)
