"""ArchiveReader: opens a medzip archive, refuses foreign/damaged/incomplete files, verifies what it hands out.

Opening and checked low-level access live in archive/checked_file.py, the records it returns in archive/records.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from archive import layout as L
from archive.checked_file import CheckedArchiveFile
from archive.checksums import file_sha256, values_sha256
from archive.errors import ChecksumMismatchError, DamagedArchiveError
from archive.records import (  # noqa: F401 (re-exported: callers import them from here)
    ArchiveInfo,
    FrameInfo,
    InstanceInfo,
    Limits,
    SeriesInfo,
    VerbatimInfo,
    VerifyReport,
    describe,
)


class ArchiveReader(CheckedArchiveFile):
    """Read a medzip archive. Opening checks format marker, version and completeness; every byte string handed out
    (header, payload, verbatim object) is checked against its SHA-256 first."""

    def __init__(self, path: str | Path, *, limits: Limits = Limits()):
        super().__init__(path, limits=limits)
        self._index: dict[str, tuple[str, int, int]] | None = None
        self._instance_cache: dict[L.InstanceKey, InstanceInfo] = {}  # the file is opened read-only

    # ---- structure ------------------------------------------------------------------------------------

    def series(self) -> list[SeriesInfo]:
        out = []
        with self._guard("series"):
            root = self._obj(L.SERIES)
            if not isinstance(root, h5py.Group):
                raise DamagedArchiveError(self.path, "group /series is missing")
            for s in self._numbered(root, "/series"):
                where = f"series {s}"
                a = root[str(s)].attrs
                out.append(SeriesInfo(s, self._str(a, "series_instance_uid", where=where),
                                      self._str(a, "modality", where=where), self._extra(a, where)))
        if len(out) != self.info.n_series:
            raise DamagedArchiveError(self.path, f"{len(out)} series found, {self.info.n_series} recorded")
        return out

    def instances(self, series: int) -> list[InstanceInfo]:
        out = []
        where = f"series {series}"
        with self._guard(where):
            grp = self._obj(f"{L.series_path(series)}/{L.INSTANCES}")
            if not isinstance(grp, h5py.Group):
                raise DamagedArchiveError(self.path, "instances group is missing", where)
            for i in self._numbered(grp, where):
                out.append(self.instance(L.InstanceKey(series, i)))
        return out

    def instance(self, key: L.InstanceKey) -> InstanceInfo:
        key = L.InstanceKey(*key)
        if key not in self._instance_cache:
            self._instance_cache[key] = self._read_instance(key)
        return self._instance_cache[key]

    def _read_instance(self, key: L.InstanceKey) -> InstanceInfo:
        where = describe(key)
        with self._guard(where):
            g = self._obj(L.instance_path(key))
            if not isinstance(g, h5py.Group):
                raise DamagedArchiveError(self.path, "instance group is missing", where)
            a = g.attrs
            ints = {n: self._int(a, n, where) for n in ("rows", "columns", "bits_allocated", "bits_stored", "signed", "number_of_frames")}
            if not (ints["rows"] >= 1 and ints["columns"] >= 1 and 1 <= ints["bits_stored"] <= ints["bits_allocated"] <= 32
                    and 1 <= ints["number_of_frames"] <= self.limits.max_items
                    and ints["rows"] * ints["columns"] <= self.limits.max_frame_pixels):
                raise DamagedArchiveError(self.path, f"implausible pixel format {ints}", where)
            dtype = L.stored_dtype(ints["bits_allocated"], bool(ints["signed"]))
            if self._str(a, "values_dtype", where=where) != dtype.str:
                raise DamagedArchiveError(self.path, "values_dtype does not match the pixel format", where)
            return InstanceInfo(
                key=key,
                sop_instance_uid=self._str(a, "sop_instance_uid", where=where),
                sop_class_uid=self._str(a, "sop_class_uid", where=where),
                modality=self._str(a, "modality", where=where),
                rows=ints["rows"], columns=ints["columns"], bits_allocated=ints["bits_allocated"],
                bits_stored=ints["bits_stored"], signed=bool(ints["signed"]),
                number_of_frames=ints["number_of_frames"], values_dtype=dtype,
                header_format=self._str(a, "header_format", where=where),
                header_sha256=self._str(a, "header_sha256", where=where),
                extra=self._extra(a, where),
            )

    def header(self, key: L.InstanceKey) -> bytes:
        """The instance's header bytes (format in InstanceInfo.header_format), checksum verified."""
        inst = self.instance(key)
        item = describe(inst.key, inst.sop_instance_uid)
        data = self._bytes(f"{L.instance_path(inst.key)}/{L.HEADER}", self.limits.max_header_bytes, item)
        return self._checked(data, inst.header_sha256, "header", item)

    def frames(self, key: L.InstanceKey) -> list[FrameInfo]:
        inst = self.instance(key)
        where = describe(inst.key, inst.sop_instance_uid)
        out = []
        with self._guard(where):
            grp = self._obj(f"{L.instance_path(inst.key)}/{L.FRAMES}")
            if not isinstance(grp, h5py.Group):
                raise DamagedArchiveError(self.path, "frames group is missing", where)
            nums = self._numbered(grp, where)
            if len(nums) != inst.number_of_frames:
                raise DamagedArchiveError(self.path, f"{len(nums)} frames stored, {inst.number_of_frames} declared", where)
            for f in nums:
                fk = L.FrameKey(inst.key.series, inst.key.instance, f)
                fwhere = describe(fk, inst.sop_instance_uid)
                ds = grp[str(f)]
                if not isinstance(ds, h5py.Dataset):
                    raise DamagedArchiveError(self.path, "frame payload is not a dataset", fwhere)
                a = ds.attrs
                out.append(FrameInfo(fk, inst.sop_instance_uid, self._str(a, "codec", where=fwhere),
                                     self._str(a, "mode", where=fwhere), self._str(a, "payload_sha256", where=fwhere),
                                     self._str(a, "values_sha256", where=fwhere), int(ds.shape[0]) if ds.ndim == 1 else -1))
        return out

    def payload(self, frame: L.FrameKey | FrameInfo) -> bytes:
        """A frame's codec payload, refused (ChecksumMismatchError naming the frame) if it fails its SHA-256."""
        info = frame if isinstance(frame, FrameInfo) else self._frame_info(L.FrameKey(*frame))
        item = describe(info.key, info.sop_instance_uid)
        data = self._bytes(L.frame_path(info.key), self.limits.max_payload_bytes, item)
        return self._checked(data, info.payload_sha256, "payload", item)

    def _frame_info(self, key: L.FrameKey) -> FrameInfo:
        inst = self.instance(L.InstanceKey(key.series, key.instance))
        where = describe(key, inst.sop_instance_uid)
        with self._guard(where):
            ds = self._obj(L.frame_path(key))
            if not isinstance(ds, h5py.Dataset):
                raise DamagedArchiveError(self.path, "no such frame", where)
            a = ds.attrs
            return FrameInfo(key, inst.sop_instance_uid, self._str(a, "codec", where=where), self._str(a, "mode", where=where),
                             self._str(a, "payload_sha256", where=where), self._str(a, "values_sha256", where=where),
                             int(ds.shape[0]) if ds.ndim == 1 else -1)

    def check_values(self, frame: L.FrameKey | FrameInfo, values: np.ndarray) -> None:
        """Compare decoded stored values with the checksum of the original (meaningful for lossless frames)."""
        info = frame if isinstance(frame, FrameInfo) else self._frame_info(L.FrameKey(*frame))
        inst = self.instance(L.InstanceKey(info.key.series, info.key.instance))
        item = describe(info.key, info.sop_instance_uid)
        if tuple(np.shape(values)) != (inst.rows, inst.columns):
            raise ChecksumMismatchError(self.path, f"decoded shape {np.shape(values)} != ({inst.rows}, {inst.columns})", item)
        try:
            actual = values_sha256(values, inst.values_dtype)
        except ValueError as exc:
            raise ChecksumMismatchError(self.path, f"decoded values: {exc}", item) from None
        if actual != info.values_sha256:
            raise ChecksumMismatchError(self.path, "decoded values differ from the original stored values (SHA-256)", item)

    def iter_frames(self) -> Iterator[tuple[InstanceInfo, FrameInfo]]:
        """Every frame in archive order (series, instance, frame); payloads are read on demand via payload()."""
        for s in self.series():
            for inst in self.instances(s.key):
                for fr in self.frames(inst.key):
                    yield inst, fr

    def verbatim(self, series: int | None = None) -> list[VerbatimInfo]:
        keys = [series] if series is not None else [s.key for s in self.series()]
        out = []
        for s in keys:
            where = f"series {s}"
            with self._guard(where):
                grp = self._obj(f"{L.series_path(s)}/{L.VERBATIM}")
                if not isinstance(grp, h5py.Group):
                    raise DamagedArchiveError(self.path, "verbatim group is missing", where)
                for v in self._numbered(grp, where):
                    k = L.VerbatimKey(s, v)
                    vwhere = describe(k)
                    ds = grp[str(v)]
                    if not isinstance(ds, h5py.Dataset):
                        raise DamagedArchiveError(self.path, "verbatim object is not a dataset", vwhere)
                    a = ds.attrs
                    out.append(VerbatimInfo(k, self._str(a, "sop_instance_uid", where=vwhere),
                                            self._str(a, "sop_class_uid", where=vwhere), self._str(a, "modality", where=vwhere),
                                            self._str(a, "reason", where=vwhere), self._str(a, "sha256", where=vwhere),
                                            int(ds.shape[0]) if ds.ndim == 1 else -1, self._extra(a, vwhere)))
        return out

    def verbatim_bytes(self, obj: VerbatimInfo | L.VerbatimKey) -> bytes:
        info = obj if isinstance(obj, VerbatimInfo) else next(
            (v for v in self.verbatim(obj[0]) if v.key == L.VerbatimKey(*obj)), None)
        if info is None:
            raise DamagedArchiveError(self.path, "no such verbatim object", describe(L.VerbatimKey(*obj)))
        item = describe(info.key, info.sop_instance_uid)
        data = self._bytes(L.verbatim_path(info.key), self.limits.max_verbatim_bytes, item)
        return self._checked(data, info.sha256, "verbatim object", item)

    def quality(self) -> list[L.QualityRow]:
        """The per-frame quality table ([] when the writer recorded none: see info.quality_recorded)."""
        with self._guard("quality table"):
            ds = self._obj(L.QUALITY)
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.names is None:
                raise DamagedArchiveError(self.path, "quality table has the wrong structure", "quality table")
            if ds.shape[0] > self.limits.max_items:
                raise DamagedArchiveError(self.path, "quality table exceeds the item limit", "quality table")
            return L.quality_from_array(ds[()])

    def index(self) -> dict[str, tuple[str, int, int]]:
        """UID -> (kind, series, item) for every series, instance and verbatim object."""
        if self._index is None:
            with self._guard("index"):
                ds = self._obj(L.INDEX)
                if not isinstance(ds, h5py.Dataset) or ds.dtype.names != ("uid", "kind", "series", "item"):
                    raise DamagedArchiveError(self.path, "UID index is missing or malformed", "index")
                if ds.shape[0] > 4 * self.limits.max_items:
                    raise DamagedArchiveError(self.path, "UID index exceeds the item limit", "index")
                self._index = {
                    bytes(r["uid"]).decode("utf-8", "surrogateescape"): (bytes(r["kind"]).decode(), int(r["series"]), int(r["item"]))
                    for r in ds[()]
                }
        return self._index

    def find(self, uid: str) -> SeriesInfo | InstanceInfo | VerbatimInfo | None:
        hit = self.index().get(uid)
        if hit is None:
            return None
        kind, s, item = hit
        if kind == "series":
            found = next((x for x in self.series() if x.key == s), None)
        elif kind == "instance":
            found = self.instance(L.InstanceKey(s, item))
        elif kind == "verbatim" and 0 <= s < self.info.n_series:
            found = next((v for v in self.verbatim(s) if v.key.index == item), None)
        else:
            found = None
        if found is None or getattr(found, "series_instance_uid", getattr(found, "sop_instance_uid", None)) != uid:
            raise DamagedArchiveError(self.path, f"the UID index points {uid} at {kind} {s}/{item}, which does not "
                                                 "hold it", "index")
        return found

    # ---- integrity ------------------------------------------------------------------------------------

    def verify(self, *, raise_on_damage: bool = True) -> VerifyReport:
        """Read every header, payload and verbatim object and check its SHA-256 (and HDF5's own checksums).

        Returns a report listing every damaged item; with raise_on_damage (default) a damaged archive raises
        DamagedArchiveError naming all of them instead.
        """
        rep = VerifyReport(self.path)

        def attempt(fn, *args):
            try:
                fn(*args)
                return True
            except DamagedArchiveError as exc:
                rep.problems.append(f"{exc.item or 'archive'}: {exc.reason}")
                return False

        try:
            series = self.series()
            n_frames = 0
            for s in series:
                for inst in self.instances(s.key):
                    if attempt(self.header, inst.key):
                        rep.headers_checked += 1
                    try:
                        frames = self.frames(inst.key)
                    except DamagedArchiveError as exc:
                        rep.problems.append(f"{exc.item}: {exc.reason}")
                        continue
                    for fr in frames:
                        n_frames += 1
                        if attempt(self.payload, fr):
                            rep.frames_checked += 1
                for v in self.verbatim(s.key):
                    if attempt(self.verbatim_bytes, v):
                        rep.verbatim_checked += 1
            self.quality()
            found = self._walk_uids(series)
            if n_frames != self.info.n_frames:
                rep.problems.append(f"archive: {n_frames} frames found, {self.info.n_frames} recorded")
            rep.problems += self._index_problems(found)
        except DamagedArchiveError as exc:
            rep.problems.append(f"{exc.item or 'archive'}: {exc.reason}")
        return rep.raise_if_damaged() if raise_on_damage else rep


    def _walk_uids(self, series: list[SeriesInfo]) -> dict[str, tuple[str, int, int]]:
        """UID -> (kind, series, item) of every series, instance and verbatim object, as the objects say."""
        found = {}
        for s in series:
            found[s.series_instance_uid] = ("series", s.key, -1)
            for inst in self.instances(s.key):
                found[inst.sop_instance_uid] = ("instance", s.key, inst.key.instance)
            for v in self.verbatim(s.key):
                found[v.sop_instance_uid] = ("verbatim", s.key, v.key.index)
        return found

    def _index_problems(self, found: dict[str, tuple[str, int, int]]) -> list[str]:
        """The UID index, the objects' own UIDs and the recorded counts must tell one story: an object renamed,
        dropped or added behind the writer's back is named (its bytes may still pass their checksums)."""
        problems = []
        index = self.index()
        for uid in sorted(set(index) ^ set(found))[:5]:
            where = "only in the UID index" if uid in index else "not in the UID index"
            problems.append(f"index: UID {uid} is {where}")
        problems += [f"index: UID {u} is at {found[u]}, the index says {index[u]}"
                     for u in sorted(set(index) & set(found)) if index[u] != found[u]][:5]
        kinds = [k for k, _, _ in found.values()]
        for kind, recorded in (("instance", self.info.n_instances), ("verbatim", self.info.n_verbatim)):
            if kinds.count(kind) != recorded:
                problems.append(f"archive: {kinds.count(kind)} {kind} objects found, {recorded} recorded")
        return problems


def verify_archive(path: str | Path, *, expected_file_sha256: str | None = None, limits: Limits = Limits(),
                   raise_on_damage: bool = True) -> VerifyReport:
    """Open and fully verify one archive; raises ArchiveError subclasses naming what is wrong.

    With `expected_file_sha256` (the catalog's `file_sha256`, recorded at release) the whole file is also
    compared, which catches a change anywhere, even in bytes no item uses."""
    with ArchiveReader(path, limits=limits) as r:
        rep = r.verify(raise_on_damage=False)
    if expected_file_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_file_sha256:
            rep.problems.append(f"whole file: SHA-256 {actual[:16]}… differs from the recorded {expected_file_sha256[:16]}…")
    return rep.raise_if_damaged() if raise_on_damage else rep
