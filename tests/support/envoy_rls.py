"""A tiny Envoy Rate Limit Service for tests: ``ShouldRateLimit`` over gRPC on 127.0.0.1.

Fixed one-second windows per (domain, descriptor): up to ``limit`` hits are OK, the rest are
OVER_LIMIT with the time until the window resets, as the real service answers.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
from apache_beam.io.components import rate_limit_pb2

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"


class FakeRateLimitService:
    """Counts hits per descriptor per second and records every request it answered."""

    def __init__(self, limit_per_second: int) -> None:
        self.limit = limit_per_second
        self.calls: list[tuple[float, str, tuple, bool]] = []  # (time, domain, descriptor, allowed)
        self._windows: dict[tuple, int] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                self._should_rate_limit,
                request_deserializer=rate_limit_pb2.RateLimitRequest.FromString,
                response_serializer=rate_limit_pb2.RateLimitResponse.SerializeToString,
            )
        })
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def allowed_per_window(self) -> dict[int, int]:
        """OK answers per one-second window."""
        counts: dict[int, int] = {}
        for at, _, _, allowed in self.calls:
            if allowed:
                counts[int(at)] = counts.get(int(at), 0) + 1
        return counts

    def _should_rate_limit(self, request, context):  # noqa: ANN001 - gRPC handler signature
        now = time.time()
        descriptor = tuple((e.key, e.value) for d in request.descriptors for e in d.entries)
        window = (request.domain, descriptor, int(now))
        hits = max(1, request.hits_addend)
        with self._lock:
            used = self._windows.get(window, 0)
            allowed = used + hits <= self.limit
            if allowed:
                self._windows[window] = used + hits
            self.calls.append((now, request.domain, descriptor, allowed))
        response = rate_limit_pb2.RateLimitResponse()
        if allowed:
            response.overall_code = rate_limit_pb2.RateLimitResponse.OK
        else:
            response.overall_code = rate_limit_pb2.RateLimitResponse.OVER_LIMIT
            status = response.statuses.add()
            status.code = rate_limit_pb2.RateLimitResponse.OVER_LIMIT
            status.duration_until_reset.FromNanoseconds(int((int(now) + 1 - now) * 1e9))
        return response

    def __enter__(self) -> FakeRateLimitService:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
