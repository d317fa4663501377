"""Archives written by earlier code still read and decode to the same values (tests/data/archives/, made by
make_v1.py at the commit named in each json)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from archive import ArchiveReader, file_sha256, values_sha256, verify_archive
from codec import api as codec_api
from codec.modes import Mode

DATA = Path(__file__).resolve().parents[1] / "data" / "archives"
KEPT = sorted(DATA.glob("v*.h5"))


def test_a_kept_archive_exists():
    assert [p.name for p in KEPT] == ["v1.h5"]


@pytest.fixture(params=KEPT, ids=lambda p: p.name)
def kept(request):
    path = request.param
    return path, json.loads(path.with_suffix(".json").read_text())


def test_kept_archive_verifies_unchanged(kept):
    path, expected = kept
    assert file_sha256(path) == expected["file_sha256"]
    rep = verify_archive(path, expected_file_sha256=expected["file_sha256"])
    assert rep.ok and rep.frames_checked == len(expected["frames"]) and rep.verbatim_checked == len(expected["verbatim"])
    with ArchiveReader(path) as r:
        assert r.info.format_version == expected["format_version"] and r.info.study_uid == expected["study_uid"]
        assert r.info.quality_recorded and len(r.quality()) == len(expected["frames"])
        assert {q.lossless_bytes for q in r.quality()} == {-1}, "a table written before the column: not measured"
        for v, want in zip(r.verbatim(), expected["verbatim"]):
            assert v.sop_instance_uid == want["sop_instance_uid"]
            assert hashlib.sha256(r.verbatim_bytes(v)).hexdigest() == want["sha256"]
    assert file_sha256(path) == expected["file_sha256"]  # reading never writes


def test_kept_archive_decodes_to_the_same_values(kept):
    path, expected = kept
    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    with ArchiveReader(path) as r:
        frames = list(r.iter_frames())
        assert len(frames) == len(expected["frames"])
        for (inst, fr), want in zip(frames, expected["frames"]):
            assert (inst.sop_instance_uid, fr.mode, fr.codec) == (want["sop_instance_uid"], want["mode"], want["codec"])
            assert fr.values_sha256 == want["original_sha256"]
            decoded = codec_api.decode(r.payload(fr))
            assert decoded.shape == tuple(want["shape"])
            assert values_sha256(decoded, inst.values_dtype) == want["decoded_sha256"]
            mode = Mode.parse(fr.mode)
            if mode.is_lossless:
                r.check_values(fr, decoded)
            original = pydicom.dcmread(test_files / want["source"]).pixel_array
            assert values_sha256(original, inst.values_dtype) == want["original_sha256"]
            err = int(np.max(np.abs(original.astype(np.int64) - decoded.astype(np.int64))))
            assert err == want["max_error"] and err <= mode.max_error_bound
