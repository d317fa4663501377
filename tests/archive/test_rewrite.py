"""archive.rewrite: a new version of a finished archive with frames replaced and the quality table set."""
from __future__ import annotations

import pytest

from archive import (
    ArchiveReader,
    DamagedArchiveError,
    FrameKey,
    InstanceKey,
    NewPayload,
    rewrite_archive,
    set_quality,
    values_sha256,
)
from tests.helpers.archive_builders import build_study, data_offset, flip, pack, unpack


def test_rewrite_replaces_frames_and_records_quality(tmp_path):
    path = tmp_path / "s.h5"
    expect = build_study(path, quality=False)
    with ArchiveReader(path) as r:
        assert r.quality() == []
    frame, _ = expect["frames"][FrameKey(0, 2, 0)]
    new = pack(frame)
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
            r.check_values(fr, unpack(r.payload(fr)))
        assert r.verbatim_bytes(r.verbatim()[0]) == next(iter(expect["verbatim"].values()))
    with pytest.raises(KeyError, match="not in the archive"):
        rewrite_archive(path, frames={FrameKey(5, 0, 0): NewPayload(b"x", "c", "m")})
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


def test_rewrite_refuses_a_damaged_source(tmp_path):
    path = tmp_path / "s.h5"
    build_study(path)
    flip(path, data_offset(path, "/series/0/instances/0/frames/0") + 3)
    with pytest.raises(DamagedArchiveError, match="series 0 / instance 0 / frame 0"):
        set_quality(path, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
