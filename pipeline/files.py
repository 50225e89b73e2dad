"""Whole small files (configs, the summary, the run report) read and written through Beam's FileSystems.

Local paths and ``gs://`` alike (docs/behaviour.md#command-line). A local file is created as
``open()`` would create it, so the launcher's owner-only umask still applies to it.
"""

from __future__ import annotations

import errno
import os

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.api_core.exceptions import GoogleAPIError, NotFound


def as_os_error(exc: Exception, path: str) -> OSError:
    """A storage error as an OSError whose ``strerror`` is one line, as a local file's error would be."""
    if isinstance(exc, NotFound):
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    # Cloud Storage errors carry the whole request URL; the first line says what went wrong.
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return OSError(errno.EIO, first_line, path)


def read_text(path: str) -> str:
    """The whole text of a UTF-8 file, local or ``gs://``; OSError when it cannot be read."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data = handle.read()
    except GoogleAPIError as exc:
        raise as_os_error(exc, path) from None
    except ValueError as exc:  # no filesystem for this scheme
        raise OSError(errno.EINVAL, str(exc).split(",")[0], path) from None
    return data.decode("utf-8")


def write_text(path: str, text: str, mime_type: str = "text/plain") -> None:
    """Write text as UTF-8 to a file, local (its folder created) or ``gs://``, replacing it."""
    try:
        with FileSystems.create(path, mime_type=mime_type, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(text.encode("utf-8"))
    except GoogleAPIError as exc:
        raise as_os_error(exc, path) from None
    except ValueError as exc:
        raise OSError(errno.EINVAL, str(exc).split(",")[0], path) from None
