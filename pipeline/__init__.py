"""The Woopra delivery job: options, config, graph construction, launcher and summary."""
