"""A TCP server on 127.0.0.1 (or ::1) for tests: each connection is handed to ``handle`` on a thread
of its own; accepting stops on ``with`` exit, or after 20 s whatever happens."""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

ACCEPT_SECONDS = 20  # bounded: no test server outlives its test for long


class LoopbackServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.authority = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _accept(self) -> None:
        deadline = time.monotonic() + ACCEPT_SECONDS
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
