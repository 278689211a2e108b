"""Safe edits of the YAML files review writes: one writer at a time, never a half-written file.

Several replicas (or two admins) may edit the same file: an exclusive `flock` on a
hidden lock file beside it serialises them across processes, and the new content is
written to a temporary file in the same folder and renamed over the old one, so Rasa
or a reload never reads a partial file. The lock file stays beside the target (a lock
on the target itself would be lost when the rename replaces it). Blocking: call these
through `asyncio.to_thread`.
"""

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Text


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds the exclusive lock for editing `path` (its folder is created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_atomically(path: Path, text: Text) -> None:
    """Replaces `path` with `text` in one rename, keeping the old file's permissions."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
