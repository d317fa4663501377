"""ArchiveWriter: streams one study into a new archive file and publishes it atomically.

Everything goes into a hidden temporary sibling of the final path. Only `commit()` (a clean exit from the `with`
block) writes the completion marker, closes, fsyncs, renames onto the final path and fsyncs the folder; any
exception removes the temporary file. So nothing at the final path is ever partial, and a leftover temporary file
is never mistaken for an archive (its name says so, and it lacks the completion marker).

Every dataset is flushed as it is written, so a full disk fails the call that wrote the bytes (NoSpaceError naming
the folder) rather than a later object release; an aborted file is closed without writing (archive/space.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from archive import layout as L
from archive.checksums import bytes_sha256
from archive.errors import ArchiveWriteError
from archive.space import discard_and_close, guarded, writing
from atomicfs import create_private, ensure_private_dir, replace_durably, temp_sibling

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_BYTES_CHUNK = 1 << 22


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_bytes_dataset(group: h5py.Group, name: str, data: bytes) -> h5py.Dataset:
    """Opaque bytes as a fixed-size uint8 dataset, chunked so that fletcher32 covers every byte."""
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    if arr.size == 0:
        return group.create_dataset(name, shape=(0,), dtype=np.uint8)
    ds = group.create_dataset(name, data=arr, chunks=(min(arr.size, _BYTES_CHUNK),), fletcher32=True)
    ds.flush()  # the chunks reach the file now: a failing write raises here, not in a later object release
    return ds


class _Instance:
    __slots__ = ("uid", "n_frames", "frames")

    def __init__(self, uid: str, n_frames: int):
        self.uid = uid
        self.n_frames = n_frames
        self.frames: set[int] = set()


class ArchiveWriter:
    """Write one study archive. Use as a context manager; see docs/archive-format.md for the layout.

    with ArchiveWriter(path, study_uid=uid, codec="…", mode="lossless") as w:
        s = w.add_series(series_uid, "CT")
        i = w.add_instance(s, sop_instance_uid=…, …, header=b"…", header_format="dicom-part10-no-pixels")
        w.add_frame(i, 0, payload, codec="…", mode="lossless", values_sha256=values_sha256(frame))
        w.add_verbatim(s, file_bytes, sop_instance_uid=…, …, reason="no pixel data")
        w.set_quality(rows)
    """

    def __init__(
        self,
        final_path: str | Path,
        *,
        study_uid: str,
        codec: str = "",
        mode: str = "",
        content_hash: str = "",
        meta: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        created_utc: str | None = None,
    ):
        self.final_path = Path(final_path)
        self.study_uid = str(study_uid)
        self.codec = codec
        self.mode = mode
        self.content_hash = content_hash
        self.meta = dict(meta or {})
        self.overwrite = overwrite
        self.created_utc = created_utc or utc_now()
        self.tmp_path: Path | None = None
        self._h5: h5py.File | None = None
        self._series: list[str] = []
        self._series_by_uid: dict[str, int] = {}
        self._instances: dict[L.InstanceKey, _Instance] = {}
        self._n_instances: list[int] = []
        self._n_verbatim: list[int] = []
        self._uids: dict[str, tuple[str, int, int]] = {}  # SOP/series UID -> (kind, series, item)
        self._quality: list[L.QualityRow] | None = None
        self._payload_bytes = 0
        self._done = False

    # ---- life cycle -----------------------------------------------------------------------------------

    def __enter__(self) -> "ArchiveWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def _fail(self, reason: str) -> ArchiveWriteError:
        return ArchiveWriteError(self.final_path, reason)

    def open(self) -> "ArchiveWriter":
        if self._h5 is not None or self._done:
            raise self._fail("writer already opened")
        if not self.overwrite and self.final_path.exists():
            raise self._fail("an archive already exists at this path")
        try:
            with writing(self.final_path, "creating the file"):
                ensure_private_dir(self.final_path.parent)
                self.tmp_path = temp_sibling(self.final_path)
                create_private(self.tmp_path)
                self._h5 = h5py.File(self.tmp_path, "w", libver=L.LIBVER)
                a = self._h5.attrs
                L.put_str(a, "format", L.MAGIC)
                L.put_int(a, "format_version", L.FORMAT_VERSION)
                L.put_str(a, "created_utc", self.created_utc)
                L.put_str(a, "study_instance_uid", self.study_uid)
                L.put_str(a, "codec", self.codec)
                L.put_str(a, "mode", self.mode)
                L.put_str(a, "content_hash", self.content_hash)
                L.put_json(a, "meta_json", self.meta)
                L.put_str(a, "writer", f"medzip archive writer (h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version})")
                self._h5.create_group(L.SERIES)
        except BaseException:
            self.abort()
            raise
        return self

    @property
    def _file(self) -> h5py.File:
        if self._h5 is None:
            raise self._fail("writer is not open (use it as a context manager)")
        return self._h5

    def abort(self) -> None:
        """Drop everything written so far; the final path is not touched."""
        if self._h5 is not None:
            discard_and_close(self._h5)
            self._h5 = None
        if self.tmp_path is not None:
            self.tmp_path.unlink(missing_ok=True)
        self._done = True

    def commit(self) -> Path:
        """Check completeness, write index/quality/marker, then fsync + rename onto the final path."""
        f = self._file
        try:
            missing = [
                f"{L.instance_path(k)} (SOP {inst.uid}): frames {sorted(set(range(inst.n_frames)) - inst.frames)}"
                for k, inst in self._instances.items()
                if len(inst.frames) != inst.n_frames
            ]
            if missing:
                raise self._fail("instances without all their frames: " + "; ".join(missing[:5]))
            with writing(self.final_path, "finishing the file"):
                self._write_index(f)
                self._write_quality(f, self._quality or [])
                L.put_int(f.attrs, "quality_recorded", int(self._quality is not None))
                a = f.attrs
                L.put_int(a, "n_series", len(self._series))
                L.put_int(a, "n_instances", len(self._instances))
                L.put_int(a, "n_frames", sum(i.n_frames for i in self._instances.values()))
                L.put_int(a, "n_verbatim", sum(self._n_verbatim))
                L.put_int(a, "payload_bytes", self._payload_bytes)
                f.flush()  # everything but the marker is on disk: a full disk fails here, not in close()
                L.put_int(a, "complete", 1)  # written last: a file without it is never read as an archive
                f.close()
                self._h5 = None
                replace_durably(self.tmp_path, self.final_path, overwrite=self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.final_path

    # ---- content --------------------------------------------------------------------------------------

    def _check_text(self, what: str, extra: Mapping[str, Any] | None = None, **values: Any) -> None:
        """Validate strings and extra data before anything is written, so a refused call leaves no half-made group."""
        for name, value in values.items():
            if len(str(value).encode("utf-8", "surrogateescape")) > L.MAX_STR_ATTR:
                raise self._fail(f"{what}: {name} is longer than {L.MAX_STR_ATTR} bytes")
        if extra:
            try:
                text = json.dumps(dict(extra), sort_keys=True)
            except (TypeError, ValueError) as exc:
                raise self._fail(f"{what}: extra is not JSON-serialisable: {exc}") from None
            if len(text.encode()) > L.MAX_STR_ATTR:
                raise self._fail(f"{what}: extra is longer than {L.MAX_STR_ATTR} bytes as JSON")

    def _claim_uid(self, uid: str, kind: str, series: int, item: int) -> None:
        if not uid:
            raise self._fail(f"{kind} without a UID")
        if uid in self._uids:
            raise self._fail(f"duplicate UID {uid!r} ({kind}; already used by {self._uids[uid][0]})")
        self._uids[uid] = (kind, series, item)

    @guarded
    def add_series(self, series_instance_uid: str, modality: str, *, extra: Mapping[str, Any] | None = None) -> int:
        """Add a series (or return the index of the one with this UID already added)."""
        uid = str(series_instance_uid)
        if uid in self._series_by_uid:
            return self._series_by_uid[uid]
        s = len(self._series)
        self._check_text(f"series {uid[:80]!r}", extra, uid=uid, modality=modality)
        self._claim_uid(uid, "series", s, -1)
        g = self._file.create_group(L.series_path(s))
        L.put_str(g.attrs, "series_instance_uid", uid)
        L.put_str(g.attrs, "modality", modality)
        L.put_extra(g.attrs, dict(extra or {}))
        g.create_group(L.INSTANCES)
        g.create_group(L.VERBATIM)
        self._series.append(uid)
        self._series_by_uid[uid] = s
        self._n_instances.append(0)
        self._n_verbatim.append(0)
        return s

    def _check_series(self, series: int) -> int:
        if not isinstance(series, (int, np.integer)) or not 0 <= series < len(self._series):
            raise self._fail(f"unknown series index {series!r} (add_series first)")
        return int(series)

    @guarded
    def add_instance(
        self,
        series: int,
        *,
        sop_instance_uid: str,
        sop_class_uid: str,
        modality: str,
        rows: int,
        columns: int,
        bits_allocated: int,
        bits_stored: int,
        signed: bool,
        number_of_frames: int,
        header: bytes,
        header_format: str,
        extra: Mapping[str, Any] | None = None,
    ) -> L.InstanceKey:
        """An image instance: its header (opaque bytes from dicom_io) and pixel format. Frames follow."""
        s = self._check_series(series)
        if rows < 1 or columns < 1 or number_of_frames < 1:
            raise self._fail(f"SOP {sop_instance_uid}: rows, columns and frames must be >= 1")
        if not (1 <= bits_stored <= bits_allocated <= 32):
            raise self._fail(f"SOP {sop_instance_uid}: need 1 <= bits_stored ({bits_stored}) <= bits_allocated ({bits_allocated}) <= 32")
        if not header_format:
            raise self._fail(f"SOP {sop_instance_uid}: header_format is required")
        key = L.InstanceKey(s, self._n_instances[s])
        self._check_text(f"SOP {str(sop_instance_uid)[:80]!r}", extra, uid=sop_instance_uid, sop_class_uid=sop_class_uid,
                         modality=modality, header_format=header_format)
        self._claim_uid(str(sop_instance_uid), "instance", key.series, key.instance)
        g = self._file.create_group(L.instance_path(key))
        a = g.attrs
        L.put_str(a, "sop_instance_uid", sop_instance_uid)
        L.put_str(a, "sop_class_uid", sop_class_uid)
        L.put_str(a, "modality", modality)
        for name, value in (("rows", rows), ("columns", columns), ("bits_allocated", bits_allocated),
                            ("bits_stored", bits_stored), ("signed", int(bool(signed))),
                            ("number_of_frames", number_of_frames)):
            L.put_int(a, name, value)
        L.put_str(a, "values_dtype", L.stored_dtype(bits_allocated, bool(signed)).str)
        L.put_str(a, "header_format", header_format)
        L.put_str(a, "header_sha256", bytes_sha256(header))
        L.put_extra(a, dict(extra or {}))
        write_bytes_dataset(g, L.HEADER, header)
        g.create_group(L.FRAMES)
        self._n_instances[s] += 1
        self._instances[key] = _Instance(str(sop_instance_uid), int(number_of_frames))
        return key

    @guarded
    def add_frame(
        self, instance: L.InstanceKey, index: int, payload: bytes, *, codec: str, mode: str, values_sha256: str
    ) -> L.FrameKey:
        """One frame's codec payload, with the SHA-256 of the frame's ORIGINAL stored values (checksums.values_sha256)."""
        key = L.InstanceKey(*instance)
        inst = self._instances.get(key)
        if inst is None:
            raise self._fail(f"unknown instance {tuple(instance)!r} (add_instance first)")
        if not 0 <= index < inst.n_frames:
            raise self._fail(f"SOP {inst.uid}: frame {index} outside 0..{inst.n_frames - 1}")
        if index in inst.frames:
            raise self._fail(f"SOP {inst.uid}: frame {index} added twice")
        if not _SHA_RE.match(values_sha256 or ""):
            raise self._fail(f"SOP {inst.uid} frame {index}: values_sha256 must be 64 lowercase hex digits")
        if not codec or not mode:
            raise self._fail(f"SOP {inst.uid} frame {index}: codec and mode are required")
        self._check_text(f"SOP {inst.uid} frame {index}", None, codec=codec, mode=mode)
        fk = L.FrameKey(key.series, key.instance, int(index))
        ds = write_bytes_dataset(self._file, L.frame_path(fk), payload)
        a = ds.attrs
        L.put_str(a, "codec", codec)
        L.put_str(a, "mode", mode)
        L.put_str(a, "payload_sha256", bytes_sha256(payload))
        L.put_str(a, "values_sha256", values_sha256)
        inst.frames.add(int(index))
        self._payload_bytes += len(payload)
        return fk

    @guarded
    def add_verbatim(
        self,
        series: int,
        data: bytes,
        *,
        sop_instance_uid: str,
        sop_class_uid: str,
        modality: str,
        reason: str,
        extra: Mapping[str, Any] | None = None,
    ) -> L.VerbatimKey:
        """A DICOM object kept byte for byte (no grayscale pixels to code)."""
        s = self._check_series(series)
        key = L.VerbatimKey(s, self._n_verbatim[s])
        self._check_text(f"verbatim SOP {str(sop_instance_uid)[:80]!r}", extra, uid=sop_instance_uid,
                         sop_class_uid=sop_class_uid, modality=modality, reason=reason)
        self._claim_uid(str(sop_instance_uid), "verbatim", key.series, key.index)
        ds = write_bytes_dataset(self._file, L.verbatim_path(key), data)
        a = ds.attrs
        L.put_str(a, "sop_instance_uid", sop_instance_uid)
        L.put_str(a, "sop_class_uid", sop_class_uid)
        L.put_str(a, "modality", modality)
        L.put_str(a, "reason", reason)
        L.put_str(a, "sha256", bytes_sha256(data))
        L.put_extra(a, dict(extra or {}))
        self._n_verbatim[s] += 1
        return key

    def set_quality(self, rows: Iterable[L.QualityRow | Mapping[str, Any]]) -> None:
        """The per-frame quality table (replaces any earlier call); written at commit."""
        out = []
        for r in rows:
            out.append(r if isinstance(r, L.QualityRow) else L.QualityRow.from_mapping(dict(r)))
        self._quality = out

    # ---- finishing ------------------------------------------------------------------------------------

    def _write_quality(self, f: h5py.File, rows: list[L.QualityRow]) -> None:
        seen = set()
        for r in rows:
            inst = self._instances.get(L.InstanceKey(r.series, r.instance))
            if inst is None or not 0 <= r.frame < inst.n_frames:
                raise self._fail(f"quality row for a frame not in the archive: {tuple(r.key)}")
            if r.key in seen:
                raise self._fail(f"two quality rows for frame {tuple(r.key)}")
            seen.add(r.key)
        arr = L.quality_to_array(rows)
        if arr.size:
            f.create_dataset(L.QUALITY, data=arr, chunks=(min(arr.size, 4096),), fletcher32=True)
        else:
            f.create_dataset(L.QUALITY, data=arr)

    def _write_index(self, f: h5py.File) -> None:
        """UID -> location, so UIDs are looked up without walking (and never used as HDF5 names)."""
        items = sorted(self._uids.items(), key=lambda kv: (kv[1][1], kv[1][0], kv[1][2]))
        width = max([1] + [len(u.encode("utf-8", "surrogateescape")) for u, _ in items])
        arr = np.zeros(len(items), dtype=[("uid", f"S{width}"), ("kind", "S8"), ("series", "<i4"), ("item", "<i4")])
        for n, (uid, (kind, s, item)) in enumerate(items):
            arr[n] = (uid.encode("utf-8", "surrogateescape"), kind.encode(), s, item)
        if arr.size:
            f.create_dataset(L.INDEX, data=arr, chunks=(min(arr.size, 4096),), fletcher32=True)
        else:
            f.create_dataset(L.INDEX, data=arr)
