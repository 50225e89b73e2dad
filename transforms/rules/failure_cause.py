"""Why a request was not delivered, in a few plain words (pure, no Beam): the summary's top causes.

``retries_exhausted 16: connection refused by 127.0.0.1:9`` says more to a user than the
exception's text, and identical failures of different events read the same, so they count together.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_CAUSE_LENGTH = 120
# The Beam counter of each cause is named ``failure_cause/<outcome>: <cause>`` (the summary reads them).
CAUSE_COUNTER_PREFIX = "failure_cause/"

# Fragments of an error's text (lower case) and the plain cause they mean; the first that matches wins.
# libcurl's errors (the delivery's client) end in "(curl error N)": 7 could not connect, 6 could not
# resolve the host, 52 an empty reply.
_CAUSES = (
    (("connection refused", "connect call failed", "errno 111", "curl error 7)"), "connection refused by {host}"),
    (("name or service not known", "nodename nor servname", "getaddrinfo", "temporary failure in name",
      "could not resolve host", "curl error 6)"), "{host} not found (DNS)"),
    (("certificate",), "TLS certificate of {host} not trusted"),
    (("timeout", "timed out"), "no answer from {host} within --request_timeout"),
    (("reset by peer", "disconnected", "connection closed", "broken pipe", "remote end closed", "empty reply",
      "curl error 52)"), "{host} dropped the connection"),
    (("network is unreachable", "no route to host"), "{host} unreachable"),
)


def host_of(url: str) -> str:
    """``host:port`` (or ``host``) of a URL, as the user wrote it in --woopra_endpoint."""
    return urlsplit(url).netloc or url


def failure_cause(error: str, status: int | None, url: str) -> str:
    """The cause of a failed delivery: ``HTTP 503 from HOST``, ``connection refused by HOST``, or the error."""
    host = host_of(url)
    if status is not None:
        return f"HTTP {status} from {host}"
    text = error.lower()
    for fragments, cause in _CAUSES:
        if any(fragment in text for fragment in fragments):
            return cause.format(host=host)
    error = " ".join(error.split())
    return error if len(error) <= MAX_CAUSE_LENGTH else error[:MAX_CAUSE_LENGTH - 1] + "…"
