"""The checksums every part of medzip uses for archived content (one definition, here).

`values_sha256` is defined on a canonical byte layout so that it does not depend on the machine or on how an
array happens to be laid out in memory: the values in the given (or requested) integer dtype, little-endian,
C order, no header. The dtype is recorded next to the digest (instance attribute `values_dtype`), the shape by
the instance's rows/columns.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def canonical_dtype(dtype: np.dtype | str) -> np.dtype:
    """The little-endian form of `dtype` (single-byte types are unchanged)."""
    dt = np.dtype(dtype)
    return dt.newbyteorder("<") if dt.itemsize > 1 else dt


def values_sha256(values: np.ndarray, dtype: np.dtype | str | None = None) -> str:
    """SHA-256 (hex) of an array of stored values: little-endian bytes of `dtype` (default: the array's own), C order.

    When `dtype` is given the values are converted to it first, and a conversion that would change a value is an
    error (a decoded int32 frame of 12-bit data hashes like the original uint16 frame; a value that does not fit
    does not hash silently).
    """
    arr = np.asarray(values)
    target = canonical_dtype(dtype if dtype is not None else arr.dtype)
    if arr.dtype != target:
        converted = arr.astype(target)
        if dtype is not None and not np.array_equal(converted, arr):
            raise ValueError(f"values do not fit dtype {target.str} without change")
        arr = converted
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes(order="C")).hexdigest()


def bytes_sha256(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a whole file's bytes, read in chunks (input files, released archives)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def study_content_hash(items: Iterable[tuple[str, str]]) -> str:
    """Identity of a study's content for idempotent archiving.

    `items` are (SOP Instance UID, SHA-256 of that instance's input bytes) pairs, in any order; the hash is over
    them sorted, so the same files give the same hash and any added, removed or changed instance a new one.
    """
    h = hashlib.sha256(b"medzip-study-content-v1\n")
    for uid, digest in sorted((str(u), str(d)) for u, d in items):
        h.update(uid.encode("utf-8", "surrogateescape") + b"\0" + digest.encode("ascii") + b"\n")
    return h.hexdigest()
