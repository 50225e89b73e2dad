"""A forward proxy on 127.0.0.1 for the delivery client's tests: ``CONNECT host:port`` opens a tunnel
(as for ``https://`` through ``HTTPS_PROXY``), and a request in absolute form (``GET http://host/...``,
as for ``http://`` through ``HTTP_PROXY``) is passed on to its host. It records the request line of
each, and goes only to 127.0.0.1 or ::1."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "::1")


class ConnectProxy:
    """Accepts connections on 127.0.0.1; ``request_lines`` holds the first line of each."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        deadline = time.monotonic() + 20  # bounded
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
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

    def __enter__(self) -> ConnectProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


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
