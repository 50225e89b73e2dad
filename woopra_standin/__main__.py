"""CLI: ``python -m woopra_standin --port 0`` serves until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from woopra_standin.server import Rule, StandIn, parse_rules_payload, tls_context


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m woopra_standin",
        description="Serve a local stand-in for Woopra's HTTP Tracking API.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port to bind; 0 picks a free one"
    )
    parser.add_argument(
        "--rules", help='JSON file {"rules": [...], "delay_ms": N} of fault rules'
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=None,
        help="delay before every tracking response (overrides the rules file)",
    )
    parser.add_argument(
        "--record", help="append every tracking request to this JSON-lines file"
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "--verbose",
        action="store_true",
        help="log each request to stderr (by default: a count each second requests arrive)",
    )
    loudness.add_argument(
        "--quiet", action="store_true", help="log nothing, not even the counts"
    )
    parser.add_argument(
        "--show-pii",
        action="store_true",
        help="log emails, IPs and cookies in clear (redacted by default)",
    )
    parser.add_argument(
        "--tls-cert", help="serve HTTPS with this PEM certificate (needs --tls-key)"
    )
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


COUNT_EVERY_SECONDS = 1.0


def _print_count(standin: StandIn, counted: int) -> int:
    """``received 120 requests (+40)`` on stderr when requests arrived since the last count."""
    count = standin.stats()["count"]
    if count != counted:
        print(f"received {count} request{'s' if count != 1 else ''} (+{count - counted})", file=sys.stderr, flush=True)
    return count


def main(argv: list[str] | None = None) -> int:
    """Run the stand-in until SIGINT or SIGTERM; returns the process exit code."""
    args = _parse_args(argv)
    rules: list[Rule] = []
    file_delay_ms: float | None = None
    if args.rules:
        with open(args.rules, encoding="utf-8") as handle:
            rules, file_delay_ms = parse_rules_payload(json.load(handle))
    delay_ms = args.delay_ms if args.delay_ms is not None else (file_delay_ms or 0.0)

    # Per-request logs go to stderr so stdout carries only the machine-read URL line.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )

    # Install handlers before binding so an early SIGTERM still shuts down cleanly.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    try:
        ssl_context = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ValueError) as exc:
        print(f"woopra stand-in could not load the TLS certificate: {exc}", file=sys.stderr)
        return 1
    standin = StandIn(
        args.host,
        args.port,
        rules=rules,
        delay_ms=delay_ms,
        record_path=args.record,
        ssl_context=ssl_context,
        show_pii=args.show_pii,
    )
    if args.record:
        try:  # its own message: a file that cannot be written is not a port that cannot be bound
            os.makedirs(os.path.dirname(args.record) or ".", exist_ok=True)
            open(args.record, "a", encoding="utf-8").close()
        except OSError as exc:
            print(f"woopra stand-in could not open --record {args.record}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    try:
        standin.start()
    except OSError as exc:
        print(
            f"woopra stand-in could not bind {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        print(f"woopra stand-in listening on {standin.url}", flush=True)
        # Short waits keep the main thread responsive to signals on every platform.
        counted = 0
        while not stop.wait(COUNT_EVERY_SECONDS):
            if not (args.quiet or args.verbose):
                counted = _print_count(standin, counted)
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
