"""What ``python -m pipeline`` does not spend its start and end on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, subprocess_env


def test_a_run_does_not_import_ipython_even_where_it_is_installed(tmp_path: Path):
    """Beam looks for an IPython session by importing IPython; a console run refuses that import.

    A stand-in IPython package on the path records being imported, so the test means the same
    whether or not the real one is installed.
    """
    fake = tmp_path / "site" / "IPython"
    fake.mkdir(parents=True)
    marker = tmp_path / "imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef get_ipython():\n    return None\n")
    env = subprocess_env()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{fake.parent}"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "--input", str(ROOT / "samples" / "events.jsonl"),
         "--woopra_project", "shop.example", "--dry_run", f"{tmp_path}/dry/", "--dead_letter", f"{tmp_path}/dead/",
         "--summary", str(tmp_path / "summary.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "summary.json").exists()  # written before the process left
    assert not marker.exists()
    # The same Beam, in a plain interpreter, does import it: the check above is not vacuous.
    probe = "import apache_beam as beam; beam.Pipeline() | beam.Create([1])"
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True, timeout=300)
    assert marker.exists()
