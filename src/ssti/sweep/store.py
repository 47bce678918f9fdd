"""The results store of a sweep: one SQLite file (WAL), one row per run.

A row holds the run id (hash of the resolved config), the axis labels, the config and metrics as
JSON, the scanner's report (when a scan ran), status (running: handed to an executor, queued or
running, its row deleted if the sweep stops first; done; failed), start/finish times and the run folder. Each change is one transaction, so a sweep killed at any moment (even `kill -9`)
leaves every row either as it was or fully written; a restart redoes the rows that are not `done`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ssti.errors import SSTIError

FORMAT = "ssti-results"
VERSION = 1
COLUMNS = ["run_id", "sweep", "labels", "config", "metrics", "scan", "status", "error", "started", "finished", "run_dir"]
JSON_COLUMNS = {"labels", "config", "metrics", "scan"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS ssti_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    sweep    TEXT,
    labels   TEXT NOT NULL,
    config   TEXT NOT NULL,
    metrics  TEXT,
    scan     TEXT,
    status   TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    error    TEXT,
    started  REAL,
    finished REAL,
    run_dir  TEXT
);
"""


class ResultsStore:
    """A sweep's SQLite results file. Open an existing one, or create it with `create=True`."""

    def __init__(self, path: str | Path, create: bool = False, read_only: bool = False):
        """`read_only` (reports, `ssti results`, `--dry-run`): the file is opened read-only, so reading a store,
        even a committed one another process is writing, never changes its bytes (no checkpoint on close)."""
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise SSTIError(f"store: {self.path} does not exist")
        if self.path.is_dir():
            raise SSTIError(f"store: {self.path} is a folder, not an ssti results store")
        fresh = create and (not self.path.exists() or self.path.stat().st_size == 0)
        if fresh:
            self._create()
        elif not _is_sqlite(self.path):
            raise SSTIError(f"store: {self.path} is not an ssti results store (not an SQLite file)")
        if read_only:
            from urllib.parse import quote

            # no -wal beside it: no writer is mid-way, so read it as an immutable file (a plain read-only open of a
            # WAL store would leave empty -wal/-shm files beside a committed store)
            quiet = not Path(f"{self.path}-wal").exists()
            self.conn = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro{'&immutable=1' if quiet else ''}", uri=True,
                                        timeout=30, isolation_level=None)
        else:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if read_only:
                self._check()
                return
            if create and not tables:  # an SQLite file with nothing in it: initialised, not refused
                with self._tx():
                    self._schema(self.conn)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._check()
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise SSTIError(f"store: {self.path} is not an ssti results store ({e})") from None

    @staticmethod
    def _schema(conn: sqlite3.Connection) -> None:
        for stmt in filter(str.strip, SCHEMA.split(";")):
            conn.execute(stmt)
        conn.execute("INSERT OR REPLACE INTO ssti_meta VALUES ('format', ?), ('version', ?)", (FORMAT, str(VERSION)))

    def _create(self) -> None:
        """Create the store atomically: the schema is written into a temporary file that is renamed into
        place, so a process killed at any moment leaves either no store or a complete one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("BEGIN")
                self._schema(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _check(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "ssti_meta" not in tables or "runs" not in tables:
            raise SSTIError(f"store: {self.path} is an SQLite file but not an ssti results store (tables: {', '.join(sorted(tables)) or 'none'})")
        meta = dict(self.conn.execute("SELECT key, value FROM ssti_meta"))
        if meta.get("format") != FORMAT:
            raise SSTIError(f"store: {self.path} is not an ssti results store (format {meta.get('format')!r})")
        if int(meta.get("version", 0)) > VERSION:
            raise SSTIError(f"store: {self.path} was written by a newer ssti (store version {meta['version']} > {VERSION})")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the main file)."""
        self.conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def done_ids(self) -> set[str]:
        """Run ids that finished (their rows are complete; a rerun skips them)."""
        return {r[0] for r in self.conn.execute("SELECT run_id FROM runs WHERE status='done'")}

    def start(self, run_id: str, sweep: str, labels: dict, config: dict, run_dir: str) -> None:
        """Record that a run started (replacing a stale unfinished row of the same id, never a done one)."""
        with self._tx():
            row = self.conn.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row and row[0] == "done":
                return
            self.conn.execute("INSERT OR REPLACE INTO runs (run_id, sweep, labels, config, status, started, run_dir) VALUES (?,?,?,?,?,?,?)",
                              (run_id, sweep, _dumps(labels), _dumps(config), "running", time.time(), run_dir))

    def forget_unfinished(self, run_ids: Iterable[str]) -> int:
        """Delete the rows of `run_ids` still marked running (a sweep stopped before they finished: they are
        not running any more; their run folders stay and a rerun resumes them). Returns how many."""
        ids = list(run_ids)
        with self._tx():
            cur = self.conn.executemany("DELETE FROM runs WHERE run_id=? AND status='running'", [(r,) for r in ids])
        return cur.rowcount

    def finish(self, run_id: str, metrics: dict | None, scan: dict | None = None, error: str | None = None,
               started: float | None = None, finished: float | None = None, **row: Any) -> None:
        """Write a run's outcome in one transaction: metrics (status done) or an error (status failed).

        `row` may carry the other columns (sweep, labels, config, run_dir) for a run not started here.
        """
        status = "failed" if error else "done"
        with self._tx():
            old = self.conn.execute("SELECT sweep, labels, config, started, run_dir FROM runs WHERE run_id=?", (run_id,)).fetchone()
            sweep, labels, config, old_started, run_dir = old or (row.get("sweep"), _dumps(row.get("labels") or {}),
                                                                 _dumps(row.get("config") or {}), None, row.get("run_dir"))
            self.conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, sweep, labels, config, metrics, scan, status, error, started, finished, run_dir) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, sweep, labels, config, _dumps(metrics) if metrics is not None else None, _dumps(scan) if scan else None,
                 status, error, started or old_started, finished or time.time(), run_dir))
        # Copy the WAL into the main file now, not only when the last connection closes: a store that is
        # committed to git while its sweep runs (or whose sweep is killed) then holds every finished run.
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row as a dict with JSON columns decoded, in start order."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY started, run_id"
        return [_decode(dict(zip(COLUMNS, r))) for r in self.conn.execute(sql, (status,) if status else ())]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in JSON_COLUMNS:
        if row.get(key) is not None:
            row[key] = json.loads(row[key])
    return row
