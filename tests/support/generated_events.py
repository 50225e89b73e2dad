"""Event files from the benchmarks' generator (benchmarks/generate_events.py) for end-to-end tests:
consenting visitors, about 10 calls each, every event one request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def generated_events(folder: Path, count: int) -> Path:
    """Write ``count`` generated events to ``folder/events.jsonl`` and return its path."""
    path = folder / "events.jsonl"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_events.py"), str(count), str(path)],
                   check=True, capture_output=True, timeout=60)
    return path
