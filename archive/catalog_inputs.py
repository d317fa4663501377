"""The catalog's record of input files, in the same SQLite file as the archives table:

- held studies: a study whose input could not be read now (permissions, I/O error, a file still arriving) waits,
  with each such file and its reason, until a later run archives it whole;
- archived inputs: every file an archive was made from, by path, size and modification time, so a scan of the
  inbox skips what is archived already without reading it again, and still sees a file that changed since.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from archive.catalog import Catalog
from archive.catalog_owners import utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held_studies (
    study_uid   TEXT PRIMARY KEY,
    files       TEXT NOT NULL,
    updated_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_inputs (
    path        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    study_uid   TEXT NOT NULL,
    archive_id  INTEGER NOT NULL,
    recorded_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_inputs_study ON archived_inputs (study_uid);
"""


@dataclass(frozen=True)
class FileState:
    """What identifies a file's content cheaply: its path, size and modification time (ns)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> "FileState | None":
        try:
            st = Path(path).stat()
        except OSError:
            return None
        return cls(str(Path(path).absolute()), st.st_size, st.st_mtime_ns)


class InputLedger:
    """Held studies and archived input files of a catalog."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        with catalog._connect() as con:
            con.executescript(_SCHEMA)

    # ---- held studies ---------------------------------------------------------------------------------

    def hold(self, study_uid: str, files: Iterable[dict]) -> None:
        """Record that `study_uid` waits for these files ({"file", "reason"} each)."""
        with self.catalog._write() as con:
            con.execute("INSERT INTO held_studies (study_uid, files, updated_utc) VALUES (?, ?, ?) ON CONFLICT "
                        "(study_uid) DO UPDATE SET files = excluded.files, updated_utc = excluded.updated_utc",
                        (study_uid, json.dumps(list(files)), utc_now()))

    def release_hold(self, study_uid: str) -> None:
        with self.catalog._write() as con:
            con.execute("DELETE FROM held_studies WHERE study_uid = ?", (study_uid,))

    def held(self) -> dict[str, dict]:
        """{study UID: {"files": [{"file", "reason"}], "updated_utc"}} of every study waiting for an input."""
        with self.catalog._connect() as con:
            rows = con.execute("SELECT study_uid, files, updated_utc FROM held_studies ORDER BY study_uid").fetchall()
        return {r["study_uid"]: {"files": json.loads(r["files"]), "updated_utc": r["updated_utc"]} for r in rows}

    # ---- archived inputs ------------------------------------------------------------------------------

    def mark_archived(self, archive_id: int, study_uid: str, files: Iterable[FileState]) -> None:
        """These files (as they were when read) went into archive `archive_id`."""
        now = utc_now()
        with self.catalog._write() as con:
            con.executemany(
                "INSERT INTO archived_inputs (path, size, mtime_ns, study_uid, archive_id, recorded_utc) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, study_uid = excluded.study_uid, archive_id = excluded.archive_id, "
                "recorded_utc = excluded.recorded_utc",
                [(f.path, f.size, f.mtime_ns, study_uid, archive_id, now) for f in files])

    def archived(self) -> dict[str, tuple[int, int, str]]:
        """{absolute path: (size, mtime_ns, study UID)} of every input recorded as archived."""
        with self.catalog._connect() as con:
            rows = con.execute("SELECT path, size, mtime_ns, study_uid FROM archived_inputs").fetchall()
        return {r["path"]: (r["size"], r["mtime_ns"], r["study_uid"]) for r in rows}

    def unchanged(self, state: FileState, known: dict[str, tuple[int, int, str]]) -> bool:
        """True when the file is archived already exactly as it is now (same size and modification time)."""
        rec = known.get(state.path)
        return rec is not None and (rec[0], rec[1]) == (state.size, state.mtime_ns)
