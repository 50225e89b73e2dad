"""The reference: the fastest plain-Python HTTP loop we could write, no Beam.

    python benchmarks/raw_client.py URLS_FILE CONCURRENCY            # aiohttp, one event loop
    python benchmarks/raw_client.py URLS_FILE 1 --naive              # like Woopra's Python SDK

Reads one full request URL per line, sends them all (GET, keep-alive, CONCURRENCY at a time),
and prints a JSON line: {"requests": N, "seconds": S, "per_second": R, "errors": E}.
``--naive`` is what users write today: one ``requests.get`` after another, a new connection
each time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from yarl import URL


async def aiohttp_loop(urls: list[str], concurrency: int) -> tuple[float, int]:
    errors = 0
    pending = iter(urls)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for url in pending:
                try:
                    async with session.get(URL(url, encoded=True)) as response:
                        await response.read()
                        errors += response.status >= 300
                except aiohttp.ClientError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, errors


def naive_loop(urls: list[str]) -> tuple[float, int]:
    import requests

    errors = 0
    started = time.perf_counter()
    for url in urls:
        response = requests.get(url, timeout=10)  # a new connection per request, as the SDK does
        errors += response.status_code >= 300
    return time.perf_counter() - started, errors


def main() -> None:
    urls = [line.strip() for line in open(sys.argv[1]) if line.strip()]
    concurrency = int(sys.argv[2])
    if "--naive" in sys.argv:
        seconds, errors = naive_loop(urls)
    else:
        seconds, errors = asyncio.run(aiohttp_loop(urls, concurrency))
    print(json.dumps({"requests": len(urls), "seconds": seconds, "per_second": len(urls) / seconds,
                      "errors": errors}))


if __name__ == "__main__":
    main()
