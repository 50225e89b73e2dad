"""Generate a realistic JSON-lines event file of any size for benchmarks (not committed).

    python benchmarks/generate_events.py 100000 benchmarks/data/events-100k.jsonl

Visitors browse, identify themselves and buy, like the sample: ~10 events per visitor, with
consent granted, a Woopra cookie, and event times spread over the last 60 days.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PRODUCTS = [f"SKU-{i:04d}" for i in range(200)]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
STEPS = ["page", "Product Viewed", "page", "Product Added", "identify", "Checkout Started", "Order Completed",
         "page", "Products Searched", "Product Viewed"]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def visitor_events(rng: random.Random, n: int, start_ms: int) -> list[dict]:
    anon = f"{rng.getrandbits(64):016x}-{n:08d}"
    cookie = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(12))
    ip = f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    context = {"ip": ip, "userAgent": rng.choice(USER_AGENTS), "consent": {"analytics": True, "marketing": False}}
    at = start_ms
    events = []
    for step in STEPS:
        at += rng.randint(5_000, 120_000)
        product = rng.choice(PRODUCTS)
        base = {"messageId": f"{rng.getrandbits(128):032x}", "anonymousId": anon, "timestamp": iso(at),
                "context": context, "vendor_ids": {"woopra_cookie": cookie}}
        if step == "page":
            base |= {"type": "page", "properties": {"url": f"https://shop.example.com/p/{product.lower()}",
                                                    "path": f"/p/{product.lower()}", "title": product,
                                                    "referrer": "https://www.google.com/"}}
        elif step == "identify":
            base |= {"type": "identify", "userId": f"user-{n}",
                     "traits": {"email": f"visitor{n}@example.com", "name": f"Visitor {n}", "plan": "pro"}}
        else:
            base |= {"type": "track", "event": step,
                     "properties": {"product_id": product, "price": round(rng.uniform(5, 500), 2), "currency": "USD",
                                    "order_id": f"ORD-{n}", "revenue": round(rng.uniform(5, 500), 2)}}
        events.append(base)
    return events


def main() -> None:
    count, out = int(sys.argv[1]), Path(sys.argv[2])
    rng = random.Random(42)
    out.parent.mkdir(parents=True, exist_ok=True)
    now_ms = int(time.time() * 1000)
    written = 0
    with out.open("w") as handle:
        visitor = 0
        while written < count:
            for event in visitor_events(rng, visitor, now_ms - rng.randint(1, 60) * 86_400_000):
                if written == count:
                    break
                handle.write(json.dumps(event, separators=(",", ":")) + "\n")
                written += 1
            visitor += 1
    print(f"wrote {written} events for {visitor} visitors to {out}")


if __name__ == "__main__":
    main()
