"""archive.reader (and checked_file, records): damaged, truncated, foreign, unknown-version, incomplete and
temporary files are refused naming the item; limits apply before reading."""
from __future__ import annotations

import os
import random
from pathlib import Path

import h5py
import numpy as np
import pytest

import atomicfs
from archive import (
    ArchiveError,
    ArchiveReader,
    ChecksumMismatchError,
    DamagedArchiveError,
    ForeignArchiveError,
    FrameKey,
    IncompleteArchiveError,
    UnsupportedVersionError,
    verify_archive,
)
from tests.helpers.archive_builders import build_study, data_offset, flip


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


def test_flipped_payload_byte_is_refused_naming_the_frame(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    flip(path, data_offset(path, "/series/0/instances/2/frames/0") + 30)
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
    flip(path, data_offset(path, dataset) + 5)
    with pytest.raises(DamagedArchiveError, match=item):
        verify_archive(path)


def test_flipped_attribute_byte_is_refused(tmp_path):
    """Metadata (attributes, links) is checksummed by the v1.10 file format: a flipped UID is not read silently."""
    path = tmp_path / "s.h5"
    build_study(path)
    raw = path.read_bytes()
    off = raw.index(b"1.2.3.4.2.99")
    flip(path, off + 3)
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


def _edit(path: Path, fn) -> None:
    """Change the archive through h5py (HDF5's checksums stay valid: only our cross-checks can notice)."""
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize("edit", ["delete-verbatim", "rename-verbatim", "rename-instance", "delete-index-row"])
def test_objects_dropped_or_renamed_behind_the_writer_are_named(tmp_path, edit):
    """Found by fuzzing (issue 14): a verbatim object deleted, or an object's UID attribute changed, passed verify
    (its bytes still matched their checksums) and lost the object or filed it under another UID."""
    path = tmp_path / "s.h5"
    build_study(path)
    if edit == "delete-verbatim":
        _edit(path, lambda f: f["series/1/verbatim"].__delitem__("0"))
    elif edit == "rename-verbatim":
        _edit(path, lambda f: f["series/1/verbatim/0"].attrs.create("sop_instance_uid", np.bytes_(b"1.2.3.4.2.98")))
    elif edit == "rename-instance":
        _edit(path, lambda f: f["series/0/instances/1"].attrs.create("sop_instance_uid", np.bytes_(b"1.2.3.4.1.7")))
    else:
        def drop_row(f):
            rows = f["index"][()]
            attrs = dict(f["index"].attrs)
            del f["index"]
            f.create_dataset("index", data=rows[1:])
            for k, v in attrs.items():
                f["index"].attrs[k] = v
        _edit(path, drop_row)
    with ArchiveReader(path) as r:
        report = r.verify(raise_on_damage=False)
    assert not report.ok and any("index" in p or "recorded" in p for p in report.problems), report.problems


def test_find_through_an_index_that_points_at_nothing_is_a_typed_error(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    _edit(path, lambda f: f["series/1/verbatim"].__delitem__("0"))
    with ArchiveReader(path) as r, pytest.raises(DamagedArchiveError, match="does not hold it"):
        r.find("1.2.3.4.2.99")
