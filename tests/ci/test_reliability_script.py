"""scripts/reliability.py: it writes under out/ unless asked to overwrite the tracked RELIABILITY.md,
and a fault run ends without asyncio's "Task was destroyed but it is pending!"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, subprocess_env

SCRIPT = ROOT / "scripts" / "reliability.py"


def test_the_report_goes_under_out_unless_update_is_asked(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("reliability", SCRIPT)
    assert spec is not None and spec.loader is not None
    reliability = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reliability", reliability)  # its dataclasses look their module up
    spec.loader.exec_module(reliability)
    written: list[Path] = []
    monkeypatch.setattr(reliability, "write_report", lambda path, *_: written.append(path))
    monkeypatch.setattr(reliability, "run_cases", lambda *_: [])
    monkeypatch.setattr(reliability, "git_commit", lambda: "0000000")
    assert reliability.main(["--cases-only", "--case", "none"]) == 0
    assert reliability.main(["--cases-only", "--case", "none", "--update"]) == 0
    assert written == [ROOT / "out" / "RELIABILITY.md", ROOT / "RELIABILITY.md"]


def test_a_fault_run_with_answers_cut_short_ends_quietly(tmp_path):
    # The timeouts run leaves delayed answers in the stand-in when it stops.
    done = subprocess.run([sys.executable, str(SCRIPT), "--faults-only", "--fault", "timeouts", "--events", "60",
                           "--out", str(tmp_path / "report.md")], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Task was destroyed" not in done.stdout + done.stderr
    assert (tmp_path / "report.md").exists()
