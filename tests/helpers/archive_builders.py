"""Small archives for the archive tests: stand-in payloads (npy + zlib, the archive treats payloads as opaque),
random frames, quality rows, a two-series study, and byte flips for the damage tests."""
from __future__ import annotations

import io
import zlib
from pathlib import Path

import h5py
import numpy as np

from archive import ArchiveWriter, QualityRow, values_sha256


def pack(values: np.ndarray) -> bytes:
    """A stand-in payload (npy + zlib): the archive treats payloads as opaque, so most tests need no codec."""
    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    return zlib.compress(buf.getvalue())


def unpack(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(payload)), allow_pickle=False)


def random_frame(rng, rows, cols, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = np.dtype(f"{'i' if signed else 'u'}{1 if bits <= 8 else 2}")
    return rng.integers(lo, hi, size=(rows, cols), endpoint=True).astype(dtype)


def quality_row(key, uid, modality="CT", **over):
    row = dict(series=key[0], instance=key[1], frame=key[2], sop_instance_uid=uid, modality=modality,
               mode="lossless", codec="zlib-lossless", psnr=float("inf"), ssim=1.0, max_error=0,
               payload_bytes=100, original_bytes=200, ratio=2.0, gate_passed=True)
    row.update(over)
    return QualityRow.from_mapping(row)


def build_study(path: Path, rng=None, *, quality=True) -> dict:
    """A two-series study (CT with 3 single-frame instances, MR with one 2-frame instance, an SR verbatim object)."""
    rng = rng or np.random.default_rng(0)
    expect = {"frames": {}, "headers": {}, "verbatim": {}, "quality": []}
    with ArchiveWriter(path, study_uid="1.2.3.4", codec="zlib-lossless", mode="lossless",
                       content_hash="ab" * 32, meta={"source": "test", "n": 1}) as w:
        s0 = w.add_series("1.2.3.4.1", "CT", extra={"series_number": 1})
        for i in range(3):
            frame = random_frame(rng, 16, 12, 12, True)
            hdr = f"header of CT {i}".encode() * 7
            k = w.add_instance(s0, sop_instance_uid=f"1.2.3.4.1.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                               modality="CT", rows=16, columns=12, bits_allocated=16, bits_stored=12, signed=True,
                               number_of_frames=1, header=hdr, header_format="dicom-part10-no-pixels")
            payload = pack(frame)
            fk = w.add_frame(k, 0, payload, codec="zlib-lossless", mode="lossless", values_sha256=values_sha256(frame))
            expect["frames"][fk] = (frame, payload)
            expect["headers"][k] = hdr
            expect["quality"].append(quality_row(fk, f"1.2.3.4.1.{i}", psnr=float("inf"), gate_reasons=()))
        s1 = w.add_series("1.2.3.4.2", "MR")
        k = w.add_instance(s1, sop_instance_uid="1.2.3.4.2.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.4.1",
                           modality="MR", rows=5, columns=7, bits_allocated=8, bits_stored=8, signed=False,
                           number_of_frames=2, header=b"{}", header_format="dicom-json")
        expect["headers"][k] = b"{}"
        for f in (1, 0):  # frames may arrive in any order
            frame = random_frame(rng, 5, 7, 8, False)
            payload = pack(frame)
            fk = w.add_frame(k, f, payload, codec="zlib-lossless", mode="lossless", values_sha256=values_sha256(frame))
            expect["frames"][fk] = (frame, payload)
            expect["quality"].append(quality_row(fk, "1.2.3.4.2.1", modality="MR", psnr=41.5, ssim=0.97, max_error=3,
                                                 gate_passed=False, gate_reasons=("PSNR 41.50 dB < 48.0",), attempts=2,
                                                 escalations=("lossy:2",)))
        sr = b"DICM" + bytes(range(256)) * 3
        vk = w.add_verbatim(s1, sr, sop_instance_uid="1.2.3.4.2.99", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.22",
                            modality="SR", reason="no pixel data")
        expect["verbatim"][vk] = sr
        if quality:
            w.set_quality(expect["quality"])
    return expect


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([b ^ mask]))


def data_offset(path: Path, dataset: str) -> int:
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_chunk_info(0).byte_offset
