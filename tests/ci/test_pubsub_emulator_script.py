"""scripts/pubsub_emulator.sh can pick a Pub/Sub backend on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pubsub_emulator.sh"


def test_backend_reports_a_usable_backend():
    result = subprocess.run(["bash", str(SCRIPT), "backend"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"emulator", "pstest"}
