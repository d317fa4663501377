"""Names, attribute encoding and the quality-table record of the archive format (docs/archive-format.md).

Strings are stored as fixed-length UTF-8 byte attributes, never HDF5 variable-length strings: variable-length
data lives in the global heap, which HDF5 does not checksum, while fixed-length attribute values sit in object
headers that the v1.10 file format checksums. Together with fletcher32 on every dataset this makes a flipped
byte in any live part of the file an error on read (tested in tests/archive/test_reader.py).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from quality.metrics import METRICS

MAGIC = "medzip-archive"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
LIBVER = ("v110", "v110")  # superblock v3, object header v2: metadata checksums, readable by HDF5 >= 1.10

SERIES = "series"
INSTANCES = "instances"
FRAMES = "frames"
VERBATIM = "verbatim"
HEADER = "header"
QUALITY = "quality"
INDEX = "index"

MAX_STR_ATTR = 60_000  # stay inside a compact (checksummed) object header message


class InstanceKey(NamedTuple):
    series: int
    instance: int


class FrameKey(NamedTuple):
    series: int
    instance: int
    frame: int


class VerbatimKey(NamedTuple):
    series: int
    index: int


def series_path(s: int) -> str:
    return f"/{SERIES}/{s}"


def instance_path(k: InstanceKey) -> str:
    return f"/{SERIES}/{k.series}/{INSTANCES}/{k.instance}"


def frame_path(k: FrameKey) -> str:
    return f"/{SERIES}/{k.series}/{INSTANCES}/{k.instance}/{FRAMES}/{k.frame}"


def verbatim_path(k: VerbatimKey) -> str:
    return f"/{SERIES}/{k.series}/{VERBATIM}/{k.index}"


def stored_dtype(bits_allocated: int, signed: bool) -> np.dtype:
    """The dtype stored values are held in: the smallest integer that holds BitsAllocated, little-endian."""
    size = 1 if bits_allocated <= 8 else 2 if bits_allocated <= 16 else 4
    return np.dtype(f"{'<' if size > 1 else '|'}{'i' if signed else 'u'}{size}")


# ---- attributes -------------------------------------------------------------------------------------------

def put_str(attrs, name: str, value: str) -> None:
    data = str(value).encode("utf-8", "surrogateescape")
    if len(data) > MAX_STR_ATTR:
        raise ValueError(f"attribute {name!r} is {len(data)} bytes, more than {MAX_STR_ATTR}")
    attrs.create(name, np.array(data, dtype=f"S{max(len(data), 1)}"))


def put_int(attrs, name: str, value: int) -> None:
    attrs.create(name, np.int64(int(value)))


def put_float(attrs, name: str, value: float) -> None:
    attrs.create(name, np.float64(value))


def put_json(attrs, name: str, value: Any) -> None:
    put_str(attrs, name, json.dumps(value, sort_keys=True, allow_nan=True))


def put_extra(attrs, extra: dict[str, Any] | None) -> None:
    """Caller-supplied attributes, kept as one JSON document (`extra_json`) so they cannot clash with ours."""
    if extra:
        put_json(attrs, "extra_json", extra)


# ---- quality table ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QualityRow:
    """One frame's measured quality, as the verify step computed it from the archived file."""

    series: int
    instance: int
    frame: int
    sop_instance_uid: str
    modality: str
    mode: str
    codec: str
    # one column per metric of quality.metrics.METRICS, same name, its dtype from there
    psnr: float  # dB; inf for a bit-exact frame
    ssim: float
    max_error: int  # stored values
    payload_bytes: int
    original_bytes: int
    ratio: float
    gate_passed: bool
    gate_reasons: tuple[str, ...] = ()
    attempts: int = 1  # encodes tried for this frame (1 = the first mode passed)
    escalations: tuple[str, ...] = ()  # modes tried before the final one, in order
    lossless_bytes: int = -1  # the frame's payload coded lossless, measured at encode (-1: not measured)

    @property
    def key(self) -> FrameKey:
        return FrameKey(self.series, self.instance, self.frame)

    @classmethod
    def from_mapping(cls, row: dict[str, Any]) -> "QualityRow":
        names = {f.name for f in fields(cls)}
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"quality row has unknown fields {sorted(unknown)}")
        data = dict(row)
        data["gate_reasons"] = tuple(data.get("gate_reasons", ()))
        data["escalations"] = tuple(data.get("escalations", ()))
        return cls(**data)


_Q_NUMERIC = [
    ("series", "<i4"), ("instance", "<i4"), ("frame", "<i4"),
    *((m.name, m.dtype) for m in METRICS.values()),
    ("payload_bytes", "<i8"), ("original_bytes", "<i8"), ("ratio", "<f8"),
    ("gate_passed", "u1"), ("attempts", "<i4"), ("lossless_bytes", "<i8"),
]
_Q_OPTIONAL = {"lossless_bytes": -1}  # columns archives written before them lack: read as this
_Q_TEXT = ["sop_instance_uid", "modality", "mode", "codec", "gate_reasons", "escalations"]  # lists as JSON


def quality_to_array(rows: list[QualityRow]) -> np.ndarray:
    text = {name: [] for name in _Q_TEXT}
    for r in rows:
        for name in _Q_TEXT:
            v = getattr(r, name)
            s = json.dumps(list(v)) if isinstance(v, tuple) else str(v)
            text[name].append(s.encode("utf-8", "surrogateescape"))
    dtype = _Q_NUMERIC + [(n, f"S{max([1] + [len(b) for b in text[n]])}") for n in _Q_TEXT]
    out = np.zeros(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        for name, _ in _Q_NUMERIC:
            out[name][i] = getattr(r, name)
        for name in _Q_TEXT:
            out[name][i] = text[name][i]
    return out


def quality_from_array(arr: np.ndarray) -> list[QualityRow]:
    rows = []
    for rec in arr:
        data: dict[str, Any] = {}
        for name, _ in _Q_NUMERIC:
            if name in _Q_OPTIONAL and name not in arr.dtype.names:
                data[name] = _Q_OPTIONAL[name]
                continue
            v = rec[name].item()
            data[name] = bool(v) if name == "gate_passed" else v
        for name in _Q_TEXT:
            s = bytes(rec[name]).decode("utf-8", "surrogateescape")
            data[name] = tuple(json.loads(s)) if name in ("gate_reasons", "escalations") else s
        rows.append(QualityRow(**data))
    return rows


def quality_as_dict(row: QualityRow) -> dict[str, Any]:
    d = asdict(row)
    d["gate_reasons"] = list(row.gate_reasons)
    d["escalations"] = list(row.escalations)
    return d
