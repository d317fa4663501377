"""The catalog: one SQLite database (stdlib, WAL) listing every archive, its status, sizes and quality summary.

Safe under concurrent processes: every write is one short `BEGIN IMMEDIATE` transaction, and the content hash of
a study is UNIQUE, so of two runs that try to archive the same study only one gets the claim (`claim`).
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from archive.catalog_owners import default_owner, owner_is_dead, utc_now, utc_text
from archive.errors import CatalogError
from atomicfs import ensure_private_dir

STATUSES = ("pending", "released", "quarantined")
# pending -> released | quarantined; a released archive found damaged later -> quarantined;
# a quarantined study may be retried (-> pending).
TRANSITIONS = {
    "pending": {"pending", "released", "quarantined"},
    "released": {"released", "quarantined"},
    "quarantined": {"quarantined", "pending"},
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS archives (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL UNIQUE,
    path           TEXT,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'released', 'quarantined')),
    created_utc    TEXT    NOT NULL,
    updated_utc    TEXT    NOT NULL,
    owner          TEXT,
    original_bytes INTEGER,
    archived_bytes INTEGER,
    ratio          REAL,
    n_series       INTEGER,
    n_instances    INTEGER,
    n_frames       INTEGER,
    n_verbatim     INTEGER,
    min_psnr       REAL,
    min_ssim       REAL,
    max_error      INTEGER,
    mode           TEXT,
    codec          TEXT,
    file_sha256    TEXT,
    reasons        TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (study_uid, version)
);
CREATE INDEX IF NOT EXISTS archives_study ON archives (study_uid);
CREATE INDEX IF NOT EXISTS archives_created ON archives (created_utc);
CREATE INDEX IF NOT EXISTS archives_path ON archives (path);
CREATE TABLE IF NOT EXISTS archive_modalities (
    archive_id INTEGER NOT NULL REFERENCES archives (id) ON DELETE CASCADE,
    modality   TEXT    NOT NULL,
    PRIMARY KEY (archive_id, modality)
);
"""

# Columns added after the first catalogs were made: (name, SQL type and default), added to an older file on open.
# content_hash is the claim key (the inputs' hash together with the policy, see flows); inputs_hash the inputs alone.
ADDED_COLUMNS = (
    ("inputs_hash", "TEXT"),
    ("modes_used", "TEXT NOT NULL DEFAULT '{}'"),  # {final mode: frames}, JSON
    ("kept_as_received", "TEXT NOT NULL DEFAULT '[]'"),  # inputs kept verbatim because they never decode, JSON
)
_JSON_COLUMNS = {"reasons": list, "modes_used": dict, "kept_as_received": list}

# Fields a caller may set with update(); the rest are managed here.
UPDATABLE = (
    "path", "original_bytes", "archived_bytes", "ratio", "n_series", "n_instances", "n_frames", "n_verbatim",
    "min_psnr", "min_ssim", "max_error", "mode", "codec", "file_sha256", "inputs_hash", "modes_used",
    "kept_as_received",
)


@dataclass(frozen=True)
class ArchiveRecord:
    id: int
    study_uid: str
    version: int
    content_hash: str
    path: str | None
    status: str
    created_utc: str
    updated_utc: str
    owner: str | None
    original_bytes: int | None
    archived_bytes: int | None
    ratio: float | None
    n_series: int | None
    n_instances: int | None
    n_frames: int | None
    n_verbatim: int | None
    min_psnr: float | None
    min_ssim: float | None
    max_error: int | None
    mode: str | None
    codec: str | None
    file_sha256: str | None
    reasons: tuple[str, ...]
    modalities: tuple[str, ...]
    inputs_hash: str | None = None
    modes_used: dict[str, int] | None = None  # the modes the frames were finally stored in, with counts
    kept_as_received: tuple[str, ...] = ()  # "file: reason" of each undecodable input kept verbatim

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["reasons"] = list(self.reasons)
        d["modalities"] = list(self.modalities)
        d["kept_as_received"] = list(self.kept_as_received)
        d["modes_used"] = dict(self.modes_used or {})
        return d


@dataclass(frozen=True)
class Claim:
    """Result of claim(): `claimed` is True when this caller must (re)do the archiving."""

    record: ArchiveRecord
    claimed: bool
    why: str  # "new" | "taken-over" | "retry" | "exists"


class Catalog:
    """The archive catalog at `path` (created with owner-only permissions when missing)."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            have = {r[1] for r in con.execute("PRAGMA table_info(archives)")}
            for name, sql_type in ADDED_COLUMNS:
                if name not in have:  # a catalog made before the column existed
                    try:
                        con.execute(f"ALTER TABLE archives ADD COLUMN {name} {sql_type}")
                    except sqlite3.OperationalError as exc:  # another process added it first
                        if "duplicate column" not in str(exc):
                            raise

    @classmethod
    def from_config(cls, config) -> "Catalog":
        """The catalog a medzip Config points at (config.paths.catalog)."""
        return cls(config.paths.catalog)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=FULL")
            yield con
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"catalog {self.path}: {exc}") from exc
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locked) transaction: concurrent writers queue up instead of interleaving."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ---- reading --------------------------------------------------------------------------------------

    def _record(self, con: sqlite3.Connection, row: sqlite3.Row) -> ArchiveRecord:
        mods = tuple(m[0] for m in con.execute(
            "SELECT modality FROM archive_modalities WHERE archive_id = ? ORDER BY modality", (row["id"],)))
        d = dict(row)
        for name, kind in _JSON_COLUMNS.items():
            value = json.loads(d.get(name) or ("[]" if kind is list else "{}"))
            d[name] = tuple(value) if kind is list else value
        return ArchiveRecord(**d, modalities=mods)

    def _one(self, con, where: str, args: tuple) -> ArchiveRecord | None:
        row = con.execute(f"SELECT * FROM archives WHERE {where}", args).fetchone()
        return self._record(con, row) if row is not None else None

    def get(self, archive_id: int) -> ArchiveRecord:
        with self._connect() as con:
            rec = self._one(con, "id = ?", (int(archive_id),))
        if rec is None:
            raise CatalogError(f"catalog {self.path}: no archive with id {archive_id}")
        return rec

    def find_by_content_hash(self, content_hash: str) -> ArchiveRecord | None:
        with self._connect() as con:
            return self._one(con, "content_hash = ?", (content_hash,))

    def find_by_path(self, path: str | Path) -> ArchiveRecord | None:
        with self._connect() as con:
            return self._one(con, "path = ?", (str(path),))

    def find_by_study(self, study_uid: str) -> list[ArchiveRecord]:
        """Every version of a study, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM archives WHERE study_uid = ? ORDER BY version", (study_uid,)).fetchall()
            return [self._record(con, r) for r in rows]

    def latest(self, study_uid: str, status: str | None = "released") -> ArchiveRecord | None:
        """The newest version of a study (with that status, unless status is None)."""
        recs = [r for r in self.find_by_study(study_uid) if status is None or r.status == status]
        return recs[-1] if recs else None

    def list(
        self,
        *,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        modality: str | None = None,
        status: str | Iterable[str] | None = None,
        study_uid: str | None = None,
    ) -> list[ArchiveRecord]:
        """Archives created in [since, until) (UTC; a date means its midnight), with a modality and/or status."""
        where, args = ["1=1"], []
        if since is not None:
            where.append("created_utc >= ?")
            args.append(utc_text(since))
        if until is not None:
            where.append("created_utc < ?")
            args.append(utc_text(until))
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                self._check_status(s)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if modality is not None:
            where.append("id IN (SELECT archive_id FROM archive_modalities WHERE modality = ?)")
            args.append(modality.upper())
        if study_uid is not None:
            where.append("study_uid = ?")
            args.append(study_uid)
        with self._connect() as con:
            rows = con.execute(f"SELECT * FROM archives WHERE {' AND '.join(where)} ORDER BY created_utc, id", args).fetchall()
            return [self._record(con, r) for r in rows]

    # ---- writing --------------------------------------------------------------------------------------

    def _check_status(self, status: str) -> None:
        if status not in STATUSES:
            raise CatalogError(f"unknown status {status!r} (expected one of {', '.join(STATUSES)})")

    def claim(
        self,
        study_uid: str,
        content_hash: str,
        *,
        path: str | Path | None = None,
        mode: str | None = None,
        codec: str | None = None,
        owner: str | None = None,
        stale_after_s: float | None = None,
        retry_quarantined: bool = False,
    ) -> Claim:
        """Atomically claim the archiving of a study's content.

        - content never seen: a new `pending` row (version = the study's last version + 1); claimed, why="new".
        - a `pending` row whose owner process is dead (same host) or silent for `stale_after_s`: taken over
          (why="taken-over"), so a crashed run is redone exactly once.
        - a `quarantined` row with retry_quarantined: back to pending (why="retry").
        - otherwise not claimed (why="exists"): someone archived or is archiving this very content.
        """
        owner = owner or default_owner()
        now = utc_now()
        with self._write() as con:
            rec = self._one(con, "content_hash = ?", (content_hash,))
            if rec is None:
                (last,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM archives WHERE study_uid = ?",
                                      (study_uid,)).fetchone()
                cur = con.execute(
                    "INSERT INTO archives (study_uid, version, content_hash, path, status, created_utc, updated_utc,"
                    " owner, mode, codec) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                    (study_uid, last + 1, content_hash, None if path is None else str(path), now, now, owner, mode, codec),
                )
                return Claim(self._one(con, "id = ?", (cur.lastrowid,)), True, "new")
            why = None
            if rec.status == "pending" and rec.owner != owner:
                silent = stale_after_s is not None and rec.updated_utc < utc_text(
                    datetime.now(timezone.utc) - timedelta(seconds=stale_after_s))
                if owner_is_dead(rec.owner) or silent:
                    why = "taken-over"
            elif rec.status == "pending" and rec.owner == owner:
                why = "taken-over"
            elif rec.status == "quarantined" and retry_quarantined:
                why = "retry"
            if why is None:
                return Claim(rec, False, "exists")
            con.execute("UPDATE archives SET status = 'pending', owner = ?, updated_utc = ? WHERE id = ?",
                        (owner, now, rec.id))
            return Claim(self._one(con, "id = ?", (rec.id,)), True, why)

    def add(self, study_uid: str, content_hash: str, **fields: Any) -> ArchiveRecord:
        """Insert a new pending archive (CatalogError if that content is already catalogued), then set `fields`."""
        c = self.claim(study_uid, content_hash, path=fields.get("path"))
        if c.why != "new":
            raise CatalogError(f"catalog {self.path}: content {content_hash[:16]}… already catalogued "
                               f"(archive {c.record.id}, status {c.record.status})")
        return self.update(c.record.id, **fields) if fields else c.record

    def _resolve(self, con, ref: int | str | Path) -> ArchiveRecord:
        rec = self._one(con, "id = ?", (ref,)) if isinstance(ref, int) else self._one(con, "path = ?", (str(ref),))
        if rec is None:
            raise CatalogError(f"catalog {self.path}: no archive {ref!r}")
        return rec

    def update(self, ref: int | str | Path, *, modalities: Iterable[str] | None = None, **fields: Any) -> ArchiveRecord:
        """Set sizes, quality summary, path, … (names in UPDATABLE) and the archive's modalities."""
        bad = set(fields) - set(UPDATABLE)
        if bad:
            raise CatalogError(f"catalog {self.path}: fields {sorted(bad)} cannot be updated (allowed: {', '.join(UPDATABLE)})")
        with self._write() as con:
            rec = self._resolve(con, ref)
            if fields:
                cols = ", ".join(f"{k} = ?" for k in fields)
                vals = [str(v) if isinstance(v, Path) else json.dumps(list(v) if _JSON_COLUMNS[k] is list else v)
                        if k in _JSON_COLUMNS else v for k, v in fields.items()]
                con.execute(f"UPDATE archives SET {cols}, updated_utc = ? WHERE id = ?", (*vals, utc_now(), rec.id))
            if modalities is not None:
                con.execute("DELETE FROM archive_modalities WHERE archive_id = ?", (rec.id,))
                con.executemany("INSERT OR IGNORE INTO archive_modalities (archive_id, modality) VALUES (?, ?)",
                                [(rec.id, m.upper()) for m in modalities])
            return self._one(con, "id = ?", (rec.id,))

    def set_status(self, ref: int | str | Path, status: str, reasons: Iterable[str] = (), *,
                   path: str | Path | None = None) -> ArchiveRecord:
        """Move an archive to `status` (recording why, and its new path after a move)."""
        self._check_status(status)
        with self._write() as con:
            rec = self._resolve(con, ref)
            if status not in TRANSITIONS[rec.status]:
                raise CatalogError(f"catalog {self.path}: archive {rec.id} cannot go from {rec.status} to {status}")
            con.execute(
                "UPDATE archives SET status = ?, reasons = ?, path = COALESCE(?, path), updated_utc = ? WHERE id = ?",
                (status, json.dumps(list(reasons)), None if path is None else str(path), utc_now(), rec.id),
            )
            return self._one(con, "id = ?", (rec.id,))

    def release_claim(self, ref: int | str | Path, reasons: Iterable[str] = ()) -> ArchiveRecord:
        """A run that failed gives its claim back: the row stays `pending` with no owner and says why, so the next
        run of the same content takes it over (claim's why = "taken-over") instead of finding it archived."""
        with self._write() as con:
            rec = self._resolve(con, ref)
            if rec.status != "pending":
                raise CatalogError(f"catalog {self.path}: archive {rec.id} is {rec.status}, not a claim to give back")
            con.execute("UPDATE archives SET owner = NULL, reasons = ?, updated_utc = ? WHERE id = ?",
                        (json.dumps(list(reasons)), utc_now(), rec.id))
            return self._one(con, "id = ?", (rec.id,))

    def record_summary(self, ref: int | str | Path, summary: Mapping[str, Any]) -> ArchiveRecord:
        """update() from a mapping, ignoring keys that are not catalog fields (convenience for flows)."""
        fields = {k: v for k, v in summary.items() if k in UPDATABLE}
        return self.update(ref, modalities=summary.get("modalities"), **fields)
