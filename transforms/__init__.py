"""The pipeline's steps: pure rules (events, consent, identity, woopra_mapping, retry,
rate_limit, dead_letters, woopra_client) and one Beam PTransform module per step."""
