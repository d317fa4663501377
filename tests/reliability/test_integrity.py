"""Integrity: `medzip verify` (flows.verify_flow) finds and names a flipped byte anywhere in a real released archive,
re-judges the gates from the quality table, and retrieval refuses an archive that fails verification."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.helpers.flows import make_config
from tests.helpers.reliability import small_studies

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
N_OFFSETS = 50


@pytest.fixture(scope="module")
def released(tmp_path_factory, prefect_server):
    """A real study (4 CT slices, CT_small, MR_small, an SR) archived and released by the archive flow."""
    from flows.archive_flow import archive_study

    home = tmp_path_factory.mktemp("integrity")
    config = make_config(home, mode="lossless")
    study_uid, files = next(iter(small_studies(home / "inbox", n=1).items()))
    outcome = archive_study(files, config)
    assert outcome.status == "released", outcome
    return config, Path(outcome.archive)


def _offsets(size: int, seed: int = 6) -> list[int]:
    """N_OFFSETS offsets spread over the whole file (one in each of N_OFFSETS equal stretches, at random within it)."""
    rng = random.Random(seed)
    edges = [size * k // N_OFFSETS for k in range(N_OFFSETS + 1)]
    return [rng.randrange(lo, max(lo + 1, hi)) for lo, hi in zip(edges, edges[1:])]


def _payload_offset(path: Path) -> int:
    """An offset in the middle of the largest frame payload (stored contiguously, one chunk per payload)."""
    from archive import ArchiveReader

    with ArchiveReader(path) as r:
        payload = max((r.payload(fr) for _, fr in r.iter_frames()), key=len)
    start = path.read_bytes().find(payload[:256])
    assert start > 0
    return start + len(payload) // 2


def _flipped(src: Path, dst: Path, offset: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))


def test_intact_archive_verifies(released):
    from archive import Catalog
    from flows.verify_flow import check_archive

    config, path = released
    report = check_archive(path, config, Catalog.from_config(config))
    assert report["ok"], report["problems"]
    assert report["frames"] == 6 and report["verbatim"] == 1  # 4 CT slices, CT_small, MR_small; the SR


def test_flipped_byte_anywhere_is_found_and_named(released, tmp_path):
    """Each of 50 offsets spread over the released archive: verify fails and names what (catalog in use)."""
    from archive import Catalog
    from flows.verify_flow import check_archive

    config, path = released
    original = path.read_bytes()
    catalog = Catalog.from_config(config)
    missed = []
    try:
        for off in _offsets(len(original)):
            _flipped(Path(shutil.copy(path, tmp_path / "orig.h5")), path, off)
            report = check_archive(path, config, catalog)
            if report["ok"] or not all(report["problems"]):
                missed.append(off)
    finally:
        path.write_bytes(original)
    assert missed == [], f"flips not found at offsets {missed} of {len(original)}"
    assert check_archive(path, config, catalog)["ok"]


def test_flipped_byte_found_without_the_catalog(released, tmp_path):
    """An archive handed over on its own (no catalog record): HDF5's checksums and ours must still find the flip,
    except in bytes HDF5 never reads (those are covered by the catalog's whole-file SHA-256, test above)."""
    from archive import ArchiveReader
    from flows.verify_flow import check_archive

    config, path = released
    offsets = _offsets(path.stat().st_size, seed=7)
    found, unseen = 0, []
    named = []
    for off in offsets:
        copy = tmp_path / "loose.h5"
        _flipped(path, copy, off)
        report = check_archive(copy, config, catalog=None)
        if report["ok"]:
            unseen.append(off)
        else:
            found += 1
            named.append(report["problems"][0])
    # what no reader notices must be bytes no reader uses: the archive reads back identical to the original
    for off in unseen:
        _flipped(path, tmp_path / "loose.h5", off)
        with ArchiveReader(tmp_path / "loose.h5") as a, ArchiveReader(path) as b:
            for (ia, fa), (ib, fb) in zip(a.iter_frames(), b.iter_frames()):
                assert a.payload(fa) == b.payload(fb) and a.header(ia.key) == b.header(ib.key)
            assert a.quality() == b.quality()
    print(f"without catalog: {found}/{len(offsets)} flips found; unused bytes at {unseen}; e.g. {named[:3]}")
    assert found >= len(offsets) * 0.8


def test_gates_are_reapplied(released, tmp_path):
    """The recorded quality table is judged by today's gates: a frame recorded below its gate, or a stricter
    policy than the one it was released under, is named."""
    from dataclasses import replace

    from archive import ArchiveReader, set_quality
    from configs import Gate
    from flows.verify_flow import check_archive

    config, path = released
    copy = Path(shutil.copy(path, tmp_path / "copy.h5"))
    with ArchiveReader(copy) as r:
        rows = r.quality()
    worse = [replace(rows[0], psnr=30.0, ssim=0.5, max_error=900)] + rows[1:]
    set_quality(copy, worse)
    report = check_archive(copy, config, catalog=None)
    assert not report["ok"]
    assert [p for p in report["problems"] if "gate" in p and "PSNR 30.00 dB" in p and rows[0].sop_instance_uid in p]
    assert any("exceeds the lossless bound 0" in p for p in report["problems"]), report["problems"]

    strict = make_config(config.home, gates={"default": Gate(max_error_max=0)}, mode="lossless")
    assert check_archive(path, strict, catalog=None)["ok"]  # lossless meets the strictest gate


def test_truncated_and_foreign_files_are_named(released, tmp_path):
    from flows.verify_flow import check_archive

    config, path = released
    data = path.read_bytes()
    (tmp_path / "half.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "text.h5").write_bytes(b"not an archive\n" * 10)
    for name in ("half.h5", "empty.h5", "text.h5"):
        report = check_archive(tmp_path / name, config, catalog=None)
        assert not report["ok"] and report["problems"][0], (name, report)


def test_verify_flow_and_retrieval_refuse_a_damaged_release(released, tmp_path):
    """The `medzip verify` flow over released/ reports the damaged archive; retrieve_study refuses it."""
    from flows.retrieve_flow import retrieve_study
    from flows.verify_flow import verify_archives

    config, path = released
    reports = verify_archives(None, config)
    assert [r["ok"] for r in reports] == [True], reports
    original = path.read_bytes()
    try:
        _flipped(Path(shutil.copy(path, tmp_path / "orig.h5")), path, _payload_offset(path))
        reports = verify_archives(None, config)
        assert [r["ok"] for r in reports] == [False] and reports[0]["problems"], reports
        out = tmp_path / "out"
        with pytest.raises(Exception) as exc:
            retrieve_study(str(path), out, config)
        assert path.name in str(exc.value) and "frame" in str(exc.value), exc.value  # names the archive and item
        assert not (out.exists() and any(p.is_file() for p in out.rglob("*")))
    finally:
        path.write_bytes(original)
