"""The HTTP clients compared by bench_http_clients.py, each behind the sender's client interface:
``HttpClient(timeout, max_connections)``, ``await get(url, user_agent) -> (status, body, retry_after)``,
``await aclose()``. Benchmark only: the pipeline's client is transforms/delivery/curl_client.py."""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from typing import Any

MAX_BODY_BYTES = 64 * 1024


class Today:
    """The home-made asyncio + httptools client that delivery used before (from git, see bench_http_clients.py)."""

    def __init__(self, timeout: float, max_connections: int) -> None:
        spec = importlib.util.spec_from_file_location("old_http", os.environ["BENCH_OLD_HTTP_PY"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self._client = module.HttpClient(timeout, max_connections)

    async def get(self, url: str, user_agent: str) -> Any:
        return await self._client.get(url, user_agent)

    async def aclose(self) -> None:
        self._client.close()


class Aiohttp:
    """aiohttp tuned for this job: one timeout object, no cookie jar, no decompression, no
    environment look-ups per request, the URL taken as encoded."""

    def __init__(self, timeout: float, max_connections: int) -> None:
        import aiohttp
        from yarl import URL

        self._url = URL
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=60),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept"))
        self._headers = {"Accept": "*/*", "Accept-Encoding": "identity"}

    async def get(self, url: str, user_agent: str) -> tuple[int, str, str | None]:
        async with self._session.get(self._url(url, encoded=True), allow_redirects=False,
                                     headers={**self._headers, "User-Agent": user_agent}) as response:
            body = await response.content.read(MAX_BODY_BYTES)
            return response.status, body.decode("utf-8", "replace"), response.headers.get("Retry-After")

    async def aclose(self) -> None:
        await self._session.close()


class Pyreqwest:
    """pyreqwest: Rust's reqwest (hyper, rustls) on its own runtime threads."""

    def __init__(self, timeout: float, max_connections: int) -> None:
        from pyreqwest.client import ClientBuilder

        self._client = (ClientBuilder().follow_redirects(False).max_connections(max_connections)
                        .pool_max_idle_per_host(max_connections).timeout(timedelta(seconds=timeout))
                        .gzip(False).brotli(False).zstd(False).deflate(False).http1_only()
                        .default_cookie_store(False).build())

    async def get(self, url: str, user_agent: str) -> tuple[int, str, str | None]:
        request = (self._client.get(url).header("User-Agent", user_agent)
                   .header("Accept-Encoding", "identity").build())
        response = await request.send()
        body = bytes(await response.bytes())[:MAX_BODY_BYTES]
        return response.status, body.decode("utf-8", "replace"), response.get_header("retry-after")

    async def aclose(self) -> None:
        await self._client.close()


class Httpx:
    """httpx (httpcore, h11) with a pool of max_connections."""

    def __init__(self, timeout: float, max_connections: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))

    async def get(self, url: str, user_agent: str) -> tuple[int, str, str | None]:
        response = await self._client.get(url, headers={"User-Agent": user_agent, "Accept-Encoding": "identity"})
        return response.status_code, response.text[:MAX_BODY_BYTES], response.headers.get("retry-after")

    async def aclose(self) -> None:
        await self._client.aclose()


CANDIDATES = {"today": Today, "aiohttp": Aiohttp, "pyreqwest": Pyreqwest, "httpx": Httpx}


def install(name: str) -> None:
    """Make the sender build this candidate ("pycurl" is the pipeline's own client: nothing to do)."""
    if name == "pycurl":
        return
    from transforms.delivery import sender

    sender.HttpClient = CANDIDATES[name]  # type: ignore[assignment,misc]
