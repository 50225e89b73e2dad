"""A local Cloud Storage emulator (PyPI ``gcp-storage-emulator``) for tests of ``gs://`` paths.

Started as a subprocess on a free loopback port, in memory, with one bucket; stopped when the
``with`` block ends. ``env`` holds the variables that point a subprocess's Beam (through
google-cloud-storage) at it: add them to the subprocess's environment.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

READY_TIMEOUT_SECONDS = 20.0
PROJECT = "emulated-project"

# Beam asks google-auth for the default credentials before it talks to Cloud Storage, and when
# there are none it retries for about half a minute and may probe the metadata server. A user
# credential with a token that never expires is used as it is: no token refresh, nothing leaves
# the machine, and google-cloud-storage sends it to the emulator, which ignores it.
_OFFLINE_CREDENTIALS = {
    "type": "authorized_user",
    "client_id": "emulator",
    "client_secret": "emulator",
    "refresh_token": "emulator",
    "token": "emulator",
    "expiry": "2999-01-01T00:00:00Z",
    "quota_project_id": PROJECT,
}


@dataclass(frozen=True)
class GcsEmulator:
    """A running emulator: its URL, its bucket, and the environment variables that send ``gs://`` to it."""

    url: str
    bucket: str
    env: dict[str, str]

    def client(self) -> storage.Client:
        """A google-cloud-storage client of the emulator, for a test's own reads and writes."""
        return storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.url})

    def upload(self, name: str, data: bytes) -> str:
        """Store ``data`` as object ``name`` of the bucket; its ``gs://`` path."""
        self.client().bucket(self.bucket).blob(name).upload_from_string(data)
        return f"gs://{self.bucket}/{name}"

    def download(self, name: str) -> bytes:
        """The bytes of object ``name`` of the bucket."""
        return self.client().bucket(self.bucket).blob(name).download_as_bytes()

    def names(self, prefix: str) -> list[str]:
        """The names of the bucket's objects under ``prefix``, sorted."""
        return sorted(blob.name for blob in self.client().list_blobs(self.bucket, prefix=prefix))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(url: str, bucket: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the bucket's metadata until the emulator answers; bounded by READY_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b/{bucket}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gcp-storage-emulator did not answer at {url} within {READY_TIMEOUT_SECONDS:.0f} s")


@contextlib.contextmanager
def running_gcs_emulator(workdir: Path, bucket: str = "bucket") -> Iterator[GcsEmulator]:
    """Start the emulator with ``bucket`` created; stop it (and wait for it) when the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    credentials = workdir / "emulator-credentials.json"
    credentials.write_text(json.dumps(_OFFLINE_CREDENTIALS), encoding="utf-8")
    log = (workdir / "gcs-emulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory", "--default-bucket", bucket],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(url, bucket, process)
        env = {"STORAGE_EMULATOR_HOST": url, "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
               "GOOGLE_CLOUD_PROJECT": PROJECT}
        yield GcsEmulator(url=url, bucket=bucket, env=env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
