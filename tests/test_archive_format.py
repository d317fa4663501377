"""The HDF5 study archive: round trips, checksums, refusal of damaged/foreign/incomplete files, atomic writes."""
from __future__ import annotations

import errno
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import archive.writer as writer_mod
import atomicfs
from archive import (
    ArchiveError,
    ArchiveReader,
    ArchiveWriteError,
    ArchiveWriter,
    ChecksumMismatchError,
    DamagedArchiveError,
    ForeignArchiveError,
    FrameKey,
    IncompleteArchiveError,
    InstanceKey,
    NewPayload,
    QualityRow,
    UnsupportedVersionError,
    rewrite_archive,
    safe_archive_name,
    set_quality,
    values_sha256,
    verify_archive,
)
from codec import api as codec_api
from codec.modes import Mode

REPO = Path(__file__).resolve().parents[1]
LOSSLESS = Mode.parse("lossless")


def _pack(values: np.ndarray) -> bytes:
    """A stand-in payload (npy + zlib): the archive treats payloads as opaque, so most tests need no codec."""
    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    return zlib.compress(buf.getvalue())


def _unpack(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(payload)), allow_pickle=False)


def _learned_codec_ready() -> str | None:
    try:
        codec_api.encode(np.zeros((2, 2), np.uint16), LOSSLESS, 12, False)
    except codec_api.CodecError as exc:
        return str(exc)
    return None


def _frame(rng, rows, cols, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = np.dtype(f"{'i' if signed else 'u'}{1 if bits <= 8 else 2}")
    return rng.integers(lo, hi, size=(rows, cols), endpoint=True).astype(dtype)


def _quality(key, uid, modality="CT", **over):
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
            frame = _frame(rng, 16, 12, 12, True)
            hdr = f"header of CT {i}".encode() * 7
            k = w.add_instance(s0, sop_instance_uid=f"1.2.3.4.1.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                               modality="CT", rows=16, columns=12, bits_allocated=16, bits_stored=12, signed=True,
                               number_of_frames=1, header=hdr, header_format="dicom-part10-no-pixels")
            payload = _pack(frame)
            fk = w.add_frame(k, 0, payload, codec="zlib-lossless", mode="lossless", values_sha256=values_sha256(frame))
            expect["frames"][fk] = (frame, payload)
            expect["headers"][k] = hdr
            expect["quality"].append(_quality(fk, f"1.2.3.4.1.{i}", psnr=float("inf"), gate_reasons=()))
        s1 = w.add_series("1.2.3.4.2", "MR")
        k = w.add_instance(s1, sop_instance_uid="1.2.3.4.2.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.4.1",
                           modality="MR", rows=5, columns=7, bits_allocated=8, bits_stored=8, signed=False,
                           number_of_frames=2, header=b"{}", header_format="dicom-json")
        expect["headers"][k] = b"{}"
        for f in (1, 0):  # frames may arrive in any order
            frame = _frame(rng, 5, 7, 8, False)
            payload = _pack(frame)
            fk = w.add_frame(k, f, payload, codec="zlib-lossless", mode="lossless", values_sha256=values_sha256(frame))
            expect["frames"][fk] = (frame, payload)
            expect["quality"].append(_quality(fk, "1.2.3.4.2.1", modality="MR", psnr=41.5, ssim=0.97, max_error=3,
                                              gate_passed=False, gate_reasons=("PSNR 41.50 dB < 48.0",), attempts=2,
                                              escalations=("lossy:2",)))
        sr = b"DICM" + bytes(range(256)) * 3
        vk = w.add_verbatim(s1, sr, sop_instance_uid="1.2.3.4.2.99", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.22",
                            modality="SR", reason="no pixel data")
        expect["verbatim"][vk] = sr
        if quality:
            w.set_quality(expect["quality"])
    return expect


def test_round_trip_everything(tmp_path):
    path = tmp_path / "study.h5"
    expect = build_study(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["study.h5"]  # no temp file left
    with ArchiveReader(path) as r:
        info = r.info
        assert (info.study_uid, info.codec, info.mode, info.format_version) == ("1.2.3.4", "zlib-lossless", "lossless", 1)
        assert (info.n_series, info.n_instances, info.n_frames, info.n_verbatim) == (2, 4, 5, 1)
        assert info.meta == {"source": "test", "n": 1} and info.content_hash == "ab" * 32
        series = r.series()
        assert [(s.series_instance_uid, s.modality) for s in series] == [("1.2.3.4.1", "CT"), ("1.2.3.4.2", "MR")]
        assert series[0].extra == {"series_number": 1}
        seen = {}
        for inst, fr in r.iter_frames():
            assert r.header(inst.key) == expect["headers"][inst.key]
            decoded = _unpack(r.payload(fr))
            original, payload = expect["frames"][fr.key]
            assert r.payload(fr) == payload
            assert decoded.dtype == original.dtype and np.array_equal(decoded, original)
            r.check_values(fr, decoded)
            seen[fr.key] = inst
        assert set(seen) == set(expect["frames"])
        ct = seen[FrameKey(0, 0, 0)]
        assert (ct.rows, ct.columns, ct.bits_allocated, ct.bits_stored, ct.signed, ct.values_dtype.str) == (16, 12, 16, 12, True, "<i2")
        mr = seen[FrameKey(1, 0, 1)]
        assert (mr.number_of_frames, mr.header_format, mr.values_dtype.str) == (2, "dicom-json", "|u1")
        [v] = r.verbatim()
        assert (v.modality, v.reason, v.sop_instance_uid) == ("SR", "no pixel data", "1.2.3.4.2.99")
        assert r.verbatim_bytes(v) == expect["verbatim"][v.key]
        assert sorted(r.quality(), key=lambda q: q.key) == sorted(expect["quality"], key=lambda q: q.key)
        assert r.find("1.2.3.4.2.1").key == InstanceKey(1, 0)
        assert r.find("1.2.3.4.2.99").key == v.key
        assert r.find("1.2.3.4.2").modality == "MR"
        assert r.find("9.9") is None
        rep = r.verify()
        assert rep.ok and (rep.frames_checked, rep.headers_checked, rep.verbatim_checked) == (5, 4, 1)


def test_check_values_refuses_a_wrong_decode(tmp_path):
    path = tmp_path / "s.h5"
    expect = build_study(path)
    frame, _ = expect["frames"][FrameKey(0, 1, 0)]
    wrong = frame.copy()
    wrong[3, 4] += 1
    with ArchiveReader(path) as r:
        r.check_values(FrameKey(0, 1, 0), frame.astype(np.int32))  # same values in a wider dtype hash the same
        with pytest.raises(ChecksumMismatchError, match=r"series 0 / instance 1 / frame 0 \(SOP 1.2.3.4.1.1\)"):
            r.check_values(FrameKey(0, 1, 0), wrong)
        with pytest.raises(ChecksumMismatchError, match="shape"):
            r.check_values(FrameKey(0, 1, 0), frame[:, :-1])


def test_values_sha256_is_canonical():
    a = np.arange(12, dtype="<u2").reshape(3, 4)
    assert values_sha256(a) == values_sha256(a.astype(">u2")) == values_sha256(np.asfortranarray(a))
    assert values_sha256(a) != values_sha256(a.T)  # C order of the given shape
    assert values_sha256(a.astype(np.int64), "<u2") == values_sha256(a)
    with pytest.raises(ValueError):
        values_sha256(np.array([70000]), "<u2")


# ---- property test: every dtype, bit depth, sign and odd shapes --------------------------------------------

SHAPES = st.one_of(st.sampled_from([(1, 1), (3, 517), (257, 2), (1, 64), (64, 1)]),
                   st.tuples(st.integers(1, 40), st.integers(1, 40)))


def frames_spec(max_frames: int):
    @st.composite
    def spec(draw):
        bits = draw(st.integers(8, 16))
        signed = draw(st.booleans())
        bits_allocated = 8 if bits == 8 and draw(st.booleans()) else 16
        dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        shape = draw(SHAPES)
        n = draw(st.integers(1, max_frames))
        frames = [draw(hnp.arrays(dtype, shape, elements=st.integers(lo, hi))) for _ in range(n)]
        return bits, bits_allocated, signed, frames

    return spec()


def _odd(bits, signed, shape, bits_allocated=16):
    """An explicit example: extreme values of the range in an odd shape."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    a = np.resize(np.array([lo, hi, 0 if signed else lo + 1, hi - 1], dtype=dtype), shape)
    return bits, bits_allocated, signed, [a]


def _round_trip(spec, encode, decode):
    bits, bits_allocated, signed, frames = spec
    rows, cols = frames[0].shape
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.h5"
        with ArchiveWriter(path, study_uid="1.2", codec="c", mode="lossless") as w:
            s = w.add_series("1.2.1", "OT")
            k = w.add_instance(s, sop_instance_uid="1.2.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.7", modality="OT",
                               rows=rows, columns=cols, bits_allocated=bits_allocated, bits_stored=bits, signed=signed,
                               number_of_frames=len(frames), header=b"h", header_format="dicom-json")
            for i, f in enumerate(frames):
                w.add_frame(k, i, encode(f, bits, signed), codec="c", mode="lossless", values_sha256=values_sha256(f))
        with ArchiveReader(path) as r:
            got = list(r.iter_frames())
            assert len(got) == len(frames)
            for (inst, fr), original in zip(got, frames):
                decoded = decode(r.payload(fr))
                assert decoded.shape == original.shape and np.array_equal(decoded, original)
                assert values_sha256(decoded, inst.values_dtype) == fr.values_sha256 == values_sha256(original)
                r.check_values(fr, decoded)
                assert (inst.bits_stored, inst.signed, inst.bits_allocated) == (bits, signed, bits_allocated)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames_spec(max_frames=3))
def test_property_archive_round_trip(spec):
    """Random frames of every dtype/bit depth/sign/odd shape through the archive alone (opaque payloads)."""
    _round_trip(spec, lambda f, bits, signed: _pack(f), _unpack)


def test_property_codec_archive_round_trip():
    """The same through the real codec: codec.api.encode(lossless) -> archive -> codec.api.decode, bit-exact.

    Few examples: the learned codec costs seconds per frame on a loaded 2-core CPU. The explicit examples pin
    the odd shapes and the extremes of 8-, 12- and 16-bit signed and unsigned ranges."""
    if (why := _learned_codec_ready()) is not None:
        pytest.skip(f"codec.api cannot encode here: {why}")
    _codec_round_trip()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(_odd(16, True, (3, 517)))
@example(_odd(8, False, (257, 2), bits_allocated=8))
@example(_odd(12, False, (1, 1)))
@example(_odd(16, False, (2, 3)))
@example(_odd(8, True, (5, 1), bits_allocated=8))
@given(frames_spec(max_frames=1))
def _codec_round_trip(spec):
    _round_trip(spec, lambda f, bits, signed: codec_api.encode(f, LOSSLESS, bits, signed), codec_api.decode)


def test_real_ct_round_trip(tmp_path):
    """A real CT slice (pydicom's test data; archive itself never parses DICOM) and its file bytes round trip."""
    src = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    ds = pydicom.dcmread(src)
    values = ds.pixel_array
    raw = src.read_bytes()
    path = tmp_path / "ct.h5"
    with ArchiveWriter(path, study_uid=ds.StudyInstanceUID, codec="c", mode="lossless") as w:
        s = w.add_series(ds.SeriesInstanceUID, ds.Modality)
        k = w.add_instance(s, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID, modality=ds.Modality,
                           rows=ds.Rows, columns=ds.Columns, bits_allocated=ds.BitsAllocated, bits_stored=ds.BitsStored,
                           signed=ds.PixelRepresentation == 1, number_of_frames=1, header=raw,
                           header_format="dicom-part10")
        w.add_frame(k, 0, _pack(values), codec="c", mode="lossless", values_sha256=values_sha256(values))
    with ArchiveReader(path) as r:
        [(inst, fr)] = list(r.iter_frames())
        assert r.header(inst.key) == raw
        decoded = _unpack(r.payload(fr))
        assert np.array_equal(decoded, values)
        r.check_values(fr, decoded)


# ---- damage --------------------------------------------------------------------------------------------------

def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([b ^ mask]))


def _data_offset(path: Path, dataset: str) -> int:
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_chunk_info(0).byte_offset


def test_flipped_payload_byte_is_refused_naming_the_frame(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    _flip(path, _data_offset(path, "/series/0/instances/2/frames/0") + 30)
    with ArchiveReader(path) as r:  # the file still opens: only that frame is damaged
        r.payload(FrameKey(0, 1, 0))
        with pytest.raises(DamagedArchiveError, match=r"series 0 / instance 2 / frame 0 \(SOP 1.2.3.4.1.2\)"):
            r.payload(FrameKey(0, 2, 0))
        rep = r.verify(raise_on_damage=False)
        assert not rep.ok and len(rep.problems) == 1 and "series 0 / instance 2 / frame 0" in rep.problems[0]
    with pytest.raises(DamagedArchiveError, match="series 0 / instance 2 / frame 0") as exc:
        verify_archive(path)
    assert str(path) in str(exc.value)


def test_payload_checksum_catches_what_fletcher32_cannot_see(tmp_path):
    """Rewrite a payload with its fletcher32 recomputed (a consistent but wrong chunk): SHA-256 still refuses it."""
    path = tmp_path / "s.h5"
    build_study(path)
    with h5py.File(path, "r+") as f:
        ds = f["/series/1/instances/0/frames/1"]
        data = ds[()]
        data[-1] ^= 0xFF
        ds[...] = data
    with ArchiveReader(path) as r, pytest.raises(ChecksumMismatchError, match="series 1 / instance 0 / frame 1"):
        r.payload(FrameKey(1, 0, 1))


@pytest.mark.parametrize("dataset,item", [("/series/0/instances/1/header", "series 0 / instance 1"),
                                          ("/series/1/verbatim/0", "series 1 / verbatim 0")])
def test_flipped_header_or_verbatim_byte_is_refused(tmp_path, dataset, item):
    path = tmp_path / "s.h5"
    build_study(path)
    _flip(path, _data_offset(path, dataset) + 5)
    with pytest.raises(DamagedArchiveError, match=item):
        verify_archive(path)


def test_flipped_attribute_byte_is_refused(tmp_path):
    """Metadata (attributes, links) is checksummed by the v1.10 file format: a flipped UID is not read silently."""
    path = tmp_path / "s.h5"
    build_study(path)
    raw = path.read_bytes()
    off = raw.index(b"1.2.3.4.2.99")
    _flip(path, off + 3)
    with pytest.raises(ArchiveError):
        with ArchiveReader(path) as r:
            r.verify()
            r.verbatim()


def _read_everything(path: Path):
    with ArchiveReader(path) as r:
        out = [r.info, r.series(), r.quality(), r.index()]
        for inst, fr in r.iter_frames():
            out += [inst, fr, r.header(inst.key), r.payload(fr)]
        for v in r.verbatim():
            out += [v, r.verbatim_bytes(v)]
        r.verify()
    return repr(out)


def test_random_byte_flips_never_go_unnoticed(tmp_path):
    """Any flipped byte either makes reading fail with an ArchiveError or lies in unused space (content unchanged)."""
    path = tmp_path / "s.h5"
    build_study(path)
    reference = _read_everything(path)
    raw = path.read_bytes()
    rng = random.Random(1234)
    detected = 0
    n_flips = int(os.environ.get("ARCHIVE_FLIPS", "100"))  # ARCHIVE_FLIPS=3000 for a deeper run
    for off in rng.sample(range(len(raw)), n_flips):
        damaged = tmp_path / "d.h5"
        b = bytearray(raw)
        b[off] ^= 1 << rng.randrange(8)
        damaged.write_bytes(b)
        try:
            got = _read_everything(damaged)
        except ArchiveError:
            detected += 1
            continue
        assert got.replace(str(damaged), str(path)) == reference, f"flip at byte {off} changed content silently"
    assert detected > n_flips * 2 // 3  # most of the file is live, checksummed content


def test_whole_file_checksum_catches_changes_outside_any_item(tmp_path):
    from archive import file_sha256

    path = tmp_path / "s.h5"
    build_study(path)
    recorded = file_sha256(path)
    assert verify_archive(path, expected_file_sha256=recorded).ok
    with open(path, "ab") as fh:
        fh.write(b"\0")  # bytes past HDF5's end of file: no item changes, the file does
    assert verify_archive(path).ok
    with pytest.raises(DamagedArchiveError, match="whole file: SHA-256"):
        verify_archive(path, expected_file_sha256=recorded)


@pytest.mark.parametrize("keep", [0.5, 0.9, "minus1", 512])
def test_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "s.h5"
    build_study(path)
    size = path.stat().st_size
    n = size - 1 if keep == "minus1" else int(size * keep) if isinstance(keep, float) else keep
    os.truncate(path, n)
    with pytest.raises(DamagedArchiveError, match="truncated"):
        ArchiveReader(path)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("this is not an archive\n")
    with pytest.raises(ForeignArchiveError, match="not an HDF5 file"):
        ArchiveReader(text)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(ForeignArchiveError, match="empty"):
        ArchiveReader(empty)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ForeignArchiveError, match="format marker") as exc:
        ArchiveReader(plain)
    assert str(plain) in str(exc.value)
    with pytest.raises(ArchiveError, match="no such archive"):
        ArchiveReader(tmp_path / "missing.h5")


def test_unknown_version_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = np.int64(99)
    with pytest.raises(UnsupportedVersionError, match="format version 99"):
        ArchiveReader(path)


def test_structure_limits_apply_before_reading(tmp_path):
    from archive import Limits

    path = tmp_path / "s.h5"
    build_study(path)
    with ArchiveReader(path, limits=Limits(max_payload_bytes=10)) as r:
        with pytest.raises(DamagedArchiveError, match="exceed the limit"):
            r.payload(FrameKey(0, 0, 0))
    with h5py.File(path, "r+") as f:  # a crafted archive declaring an absurd frame size
        f["/series/0/instances/1"].attrs["rows"] = np.int64(10**6)
        f["/series/0/instances/1"].attrs["columns"] = np.int64(10**6)
    with ArchiveReader(path) as r, pytest.raises(DamagedArchiveError, match="series 0 / instance 1.*implausible"):
        r.instances(0)


# ---- atomicity -----------------------------------------------------------------------------------------------

def test_exception_inside_writer_leaves_nothing(tmp_path):
    final = tmp_path / "s.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with ArchiveWriter(final, study_uid="1.2") as w:
            s = w.add_series("1.2.1", "CT")
            k = w.add_instance(s, sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="CT", rows=2, columns=2,
                               bits_allocated=16, bits_stored=12, signed=False, number_of_frames=1, header=b"h",
                               header_format="dicom-json")
            w.add_frame(k, 0, b"payload", codec="c", mode="lossless", values_sha256="0" * 64)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_instances_are_refused_at_commit(tmp_path):
    final = tmp_path / "s.h5"
    with pytest.raises(ArchiveWriteError, match=r"frames \[1\]"):
        with ArchiveWriter(final, study_uid="1.2") as w:
            s = w.add_series("1.2.1", "CT")
            k = w.add_instance(s, sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="CT", rows=2, columns=2,
                               bits_allocated=16, bits_stored=12, signed=False, number_of_frames=2, header=b"h",
                               header_format="dicom-json")
            w.add_frame(k, 0, b"payload", codec="c", mode="lossless", values_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_writer_misuse_is_refused(tmp_path):
    final = tmp_path / "s.h5"
    with pytest.raises(ArchiveWriteError, match="duplicate UID"):
        with ArchiveWriter(final, study_uid="1.2") as w:
            s = w.add_series("1.2.1", "CT")
            w.add_verbatim(s, b"x", sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="SR", reason="r")
            w.add_verbatim(s, b"y", sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="SR", reason="r")
    with pytest.raises(ArchiveWriteError, match="quality row for a frame not in the archive"):
        with ArchiveWriter(final, study_uid="1.2") as w:
            w.set_quality([_quality((0, 0, 0), "1")])
    assert list(tmp_path.iterdir()) == []
    build_study(final)
    with pytest.raises(ArchiveWriteError, match="already exists"):
        ArchiveWriter(final, study_uid="1.2").open()


def test_refused_calls_leave_the_archive_usable(tmp_path):
    """A refused add_* (hostile UID, unserialisable extra) changes nothing: the caller may go on."""
    final = tmp_path / "s.h5"
    with ArchiveWriter(final, study_uid="1.2") as w:
        s = w.add_series("1.2.1", "CT")
        with pytest.raises(ArchiveWriteError, match="longer than"):
            w.add_verbatim(s, b"x", sop_instance_uid="1." * 40_000, sop_class_uid="x", modality="SR", reason="r")
        with pytest.raises(ArchiveWriteError, match="JSON"):
            w.add_verbatim(s, b"x", sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="SR", reason="r",
                           extra={"bad": object()})
        w.add_verbatim(s, b"x", sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="SR", reason="r")
        hostile = "../../" + "9" * 300 + "/\u00e9"
        w.add_verbatim(s, b"y", sop_instance_uid=hostile, sop_class_uid="x", modality="SR", reason="r")
    with ArchiveReader(final) as r:
        assert [v.sop_instance_uid for v in r.verbatim()] == ["1.2.1.1", hostile]
        assert r.find(hostile).key.index == 1
        r.verify()


def test_failure_during_rename_leaves_no_temp(tmp_path, monkeypatch):
    def broken_rename(tmp, final, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_mod, "replace_durably", broken_rename)
    with pytest.raises(OSError, match="No space"):
        build_study(tmp_path / "s.h5")
    assert list(tmp_path.iterdir()) == []


CRASH = textwrap.dedent("""
    import os, sys
    from archive import ArchiveWriter
    w = ArchiveWriter(sys.argv[1], study_uid="1.2").open()
    s = w.add_series("1.2.1", "CT")
    k = w.add_instance(s, sop_instance_uid="1.2.1.1", sop_class_uid="x", modality="CT", rows=2, columns=2,
                       bits_allocated=16, bits_stored=12, signed=False, number_of_frames=2, header=b"h",
                       header_format="dicom-json")
    w.add_frame(k, 0, b"payload" * 1000, codec="c", mode="lossless", values_sha256="0" * 64)
    w._h5.flush()
    os.kill(os.getpid(), 9)
""")


def test_killed_writer_leaves_only_a_temp_file_that_is_never_read(tmp_path):
    final = tmp_path / "s.h5"
    proc = subprocess.run([sys.executable, "-c", CRASH, str(final)], cwd=REPO, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert not final.exists()
    [tmp] = list(tmp_path.iterdir())
    assert atomicfs.is_temp_name(tmp.name)
    with pytest.raises(IncompleteArchiveError, match="never closed"):
        ArchiveReader(tmp)
    live = atomicfs.temp_sibling(tmp_path / "other.h5")  # a writer of this (running) process: not stale
    live.write_bytes(b"")
    assert atomicfs.stale_temp_files(tmp_path) == [tmp]
    assert atomicfs.remove_stale_temp_files(tmp_path) == [tmp] and sorted(tmp_path.iterdir()) == [live]


def test_finished_but_unrenamed_temp_is_never_read(tmp_path):
    """A crash after the writer closed the file but before the rename: the temp name alone refuses it."""
    final = tmp_path / "s.h5"
    build_study(final)
    tmp = atomicfs.temp_sibling(final)
    final.rename(tmp)
    with pytest.raises(IncompleteArchiveError, match="temporary"):
        ArchiveReader(tmp)


def test_file_without_completion_marker_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]
    with pytest.raises(IncompleteArchiveError, match="completion marker"):
        ArchiveReader(path)


def test_writer_streams_frames_without_holding_them(tmp_path):
    """Python-side memory stays flat while 32 frames of 1 MiB (32 MiB) go through the writer."""
    payload = os.urandom(1 << 20)
    tracemalloc.start()
    try:
        with ArchiveWriter(tmp_path / "big.h5", study_uid="1.2") as w:
            s = w.add_series("1.2.1", "CT")
            for i in range(32):
                k = w.add_instance(s, sop_instance_uid=f"1.2.1.{i}", sop_class_uid="x", modality="CT", rows=128,
                                   columns=256, bits_allocated=16, bits_stored=12, signed=False, number_of_frames=1,
                                   header=b"h" * 2000, header_format="dicom-json")
                w.add_frame(k, 0, payload, codec="c", mode="lossless", values_sha256="0" * 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak traced memory {peak} bytes"
    with ArchiveReader(tmp_path / "big.h5") as r:
        assert r.info.n_frames == 32 and r.info.payload_bytes == 32 * len(payload)


# ---- rewrite, quality, moves ---------------------------------------------------------------------------------

def test_rewrite_replaces_frames_and_records_quality(tmp_path):
    path = tmp_path / "s.h5"
    expect = build_study(path, quality=False)
    with ArchiveReader(path) as r:
        assert r.quality() == []
    frame, _ = expect["frames"][FrameKey(0, 2, 0)]
    new = _pack(frame)
    rewrite_archive(path)
    with ArchiveReader(path) as r:
        assert not r.info.quality_recorded  # a rewrite does not invent a quality table
    rewrite_archive(path, frames={FrameKey(0, 2, 0): NewPayload(new + b"", "other-codec", "near-lossless:1")},
                    mode="mixed")
    set_quality(path, expect["quality"])
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]
    with ArchiveReader(path) as r:
        assert r.info.quality_recorded
        assert r.info.mode == "mixed" and r.info.codec == "zlib-lossless"
        fr = next(f for f in r.frames(InstanceKey(0, 2)))
        assert (fr.codec, fr.mode) == ("other-codec", "near-lossless:1")
        assert fr.values_sha256 == values_sha256(frame)
        assert len(r.quality()) == 5
        r.verify()
        for (inst, fr) in r.iter_frames():
            original, _ = expect["frames"][fr.key]
            r.check_values(fr, _unpack(r.payload(fr)))
        assert r.verbatim_bytes(r.verbatim()[0]) == next(iter(expect["verbatim"].values()))
    with pytest.raises(KeyError, match="not in the archive"):
        rewrite_archive(path, frames={FrameKey(5, 0, 0): NewPayload(b"x", "c", "m")})
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


def test_rewrite_refuses_a_damaged_source(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    _flip(path, _data_offset(path, "/series/0/instances/0/frames/0") + 3)
    with pytest.raises(DamagedArchiveError, match="series 0 / instance 0 / frame 0"):
        set_quality(path, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_safe_archive_name_resists_hostile_uids():
    assert safe_archive_name("1.2.840.1", 2) == "1.2.840.1.v2.h5"
    for uid in ("../../etc/passwd", "/abs/path", "1" * 300, "1.2\x00.3", "..", ""):
        name = safe_archive_name(uid, 1)
        assert "/" not in name and not name.startswith(".") and len(name) < 80


# ---- real studies through dicom_io (the archive itself never imports dicom_io) ------------------------------

def test_real_studies_round_trip_through_the_archive(tmp_path):
    """pydicom's bundled files grouped into studies by dicom_io: headers, every frame's stored values and the
    verbatim objects come back from the archive identical (stand-in payloads; the codec has its own tests)."""
    import dicom_io

    result = dicom_io.read_studies([Path(pydicom.__file__).parent / "data" / "test_files"])
    n_frames = n_verbatim = skipped = 0
    for study in result.studies:
        path = tmp_path / safe_archive_name(study.study_instance_uid, 1)
        expect = {}
        with ArchiveWriter(path, study_uid=study.study_instance_uid, codec="npz", mode="lossless") as w:
            for series in study.series:
                s = w.add_series(series.series_instance_uid, series.modality)
                for inst in series.instances:
                    try:
                        frames = list(dicom_io.iter_frames(inst))
                    except dicom_io.DicomReadError:
                        skipped += 1  # dicom_io's own tests cover files it refuses
                        continue
                    header = dicom_io.header_bytes(inst)
                    px = inst.pixel
                    k = w.add_instance(s, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
                                       modality=inst.modality, rows=px.rows, columns=px.columns,
                                       bits_allocated=px.bits_allocated, bits_stored=px.bits_stored, signed=px.signed,
                                       number_of_frames=inst.number_of_frames, header=header,
                                       header_format="dicom-part10-no-pixels")
                    expect[inst.sop_instance_uid] = (header, [])
                    for f, values in enumerate(frames):
                        w.add_frame(k, f, _pack(values), codec="npz", mode="lossless", values_sha256=values_sha256(values))
                        expect[inst.sop_instance_uid][1].append(values)
                for obj in series.verbatim:
                    raw = dicom_io.read_verbatim_bytes(obj)
                    w.add_verbatim(s, raw, sop_instance_uid=obj.sop_instance_uid, sop_class_uid=obj.sop_class_uid,
                                   modality=obj.modality, reason=obj.reason)
                    expect[obj.sop_instance_uid] = raw
        with ArchiveReader(path) as r:
            r.verify()
            for inst, fr in r.iter_frames():
                header, frames = expect[inst.sop_instance_uid]
                assert r.header(inst.key) == header
                decoded = _unpack(r.payload(fr))
                assert np.array_equal(decoded, frames[fr.key.frame]) and decoded.dtype == inst.values_dtype
                r.check_values(fr, decoded)
                assert pydicom.dcmread(io.BytesIO(header)).SOPInstanceUID == inst.sop_instance_uid
                n_frames += 1
            for v in r.verbatim():
                assert r.verbatim_bytes(v) == expect[v.sop_instance_uid]
                n_verbatim += 1
    print(f"{len(result.studies)} studies, {n_frames} frames, {n_verbatim} verbatim, {skipped} refused by dicom_io")
    assert n_frames > 20 and n_verbatim > 0 and skipped < 10
