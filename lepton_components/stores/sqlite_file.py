"""The engine for a tracker store in an SQLite file: kept connections, a write-ahead log,
and a loud failure when the file is deleted or replaced under the running bot.

SQLAlchemy 1.4 gives SQLite files a `NullPool`, so every message opened the file twice
(to read the conversation, then to append to it) and each commit went through SQLite's
rollback journal: write the journal, sync it, write the database, sync it, delete the
journal. Here connections are pooled and the database runs in WAL mode: a commit appends
to the log and syncs that once (`synchronous` stays at SQLite's FULL, so a committed
turn survives a power cut as before), and readers (the operator console) no longer wait
for the writer. Measured in docs/benchmarks.md ("Reading and writing conversations").

A kept connection follows the file it opened: deleted or replaced (`mv backup.db
rasa.db`), it would go on reading and writing the old one, silently. So the engine is
bound to the file it first opened (it holds that file open, so a new file cannot take
over its inode number): once the file at the path is another, every checkout fails
loudly, naming the fix, until the bot restarts. The first such checkout also empties the
old file's write-ahead log (`wal_checkpoint(TRUNCATE)`, through a connection still on the
old file), so the restarted bot does not replay the old file's log into the restored one.
"""

import os
import weakref
from pathlib import Path
from typing import Any, Dict

import sqlalchemy as sa
import sqlalchemy.event
import sqlalchemy.exc

def is_sqlite_file(url: "sa.engine.URL") -> bool:
    """An SQLite URL naming a file (not `:memory:`, not a temporary database)."""
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


class DatabaseFileChanged(sa.exc.SQLAlchemyError):
    """The SQLite file was deleted or replaced under the running bot."""


def _is_file_at(descriptor: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    bound = os.fstat(descriptor)
    return (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino)


def sqlite_file_engine(url: "sa.engine.URL") -> "sa.engine.Engine":
    """A pooled WAL-mode engine bound to the SQLite file `url` names (module docstring)."""
    path = Path(url.database).resolve()
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.QueuePool,
        # The event loop and the operator console's worker threads take turns on a connection.
        connect_args={"check_same_thread": False},
    )
    bound: Dict[str, int] = {}

    @sa.event.listens_for(engine, "connect")
    def _on_connect(connection: Any, record: Any) -> None:
        if "file" not in bound:
            bound["file"] = os.open(path, os.O_RDONLY)
            weakref.finalize(engine, os.close, bound["file"])
        record.info["on_bound_file"] = _is_file_at(bound["file"], path)
        if record.info["on_bound_file"]:
            connection.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(connection: Any, record: Any, proxy: Any) -> None:
        if _is_file_at(bound["file"], path):
            return
        if record.info.get("on_bound_file"):
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        record.invalidate()
        raise DatabaseFileChanged(
            f"{path} was deleted or replaced while the bot was running. Stop the bot before "
            "restoring or deleting its database, then start it again"
        )

    return engine
