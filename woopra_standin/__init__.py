"""Local stand-in for Woopra's HTTP Tracking API, with recording and fault injection."""

from woopra_standin.server import Rule, StandIn, parse_rules_payload

__all__ = ["Rule", "StandIn", "parse_rules_payload"]
