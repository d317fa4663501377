"""flows.ingest on real files: what holds a study back, what is kept as received, and the claim key (no Prefect)."""
from __future__ import annotations

import os
import time

import pydicom
import pytest

from configs import Gate
from dicom_io import read_studies
from flows.ingest import beside, claim_key, policy_of, sort_inputs
from tests.helpers.flows import _find, make_config, write_study

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UID = "1.2.826.0.1.3680043.8.498.61001"


def _series(tmp_path):
    return write_study(tmp_path / "in", UID, sorted(p for p in _find("17106").parent.iterdir() if p.is_file()))


def _age(path, seconds=600):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_file_still_arriving_holds_the_whole_study(tmp_path):
    files = _series(tmp_path)
    full = files[1].read_bytes()
    files[1].write_bytes(full[: len(full) // 2])  # a slice half copied, written just now
    for f in files[:1] + files[2:]:
        _age(f)
    found = read_studies([tmp_path / "in"])
    got = sort_inputs(found.studies[0], found.errors, settle_seconds=60)
    assert [h["file"] for h in got.held] == [str(files[1])]
    assert "changed less than 60 s ago" in got.held[0]["reason"] and not got.kept
    # once it has stopped changing, the same truncated file is an input that will never decode: kept as received
    _age(files[1])
    found = read_studies([tmp_path / "in"])
    got = sort_inputs(found.studies[0], found.errors, settle_seconds=60)
    assert not got.held and [k["file"] for k in got.kept] == [str(files[1])]
    assert "TruncatedDicomError" in got.kept[0]["reason"]
    assert str(files[1]) in {str(v.path) for v in got.study.verbatim}
    assert len(got.study.instances) == 3 and any(str(files[1]) in e for e in got.input_errors)


def test_already_lossy_input_is_kept_as_its_original_file(tmp_path):
    files = write_study(tmp_path / "in", UID, [_find("JPGExtended.dcm"), _find("MR2_J2KI.dcm"), _find("CT_small.dcm")])
    found = read_studies([tmp_path / "in"])
    got = sort_inputs(found.studies[0], found.errors, settle_seconds=0)
    kept = {k["file"]: k["reason"] for k in got.kept}
    assert set(kept) == {str(files[0]), str(files[1])}
    assert all(r.startswith("already lossy-compressed") and "no gate applied" in r for r in kept.values())
    assert "JPEG Extended" in kept[str(files[0])] and "JPEG 2000" in kept[str(files[1])]
    assert [i.path for i in got.study.instances] == [files[2]]


def test_an_identical_duplicate_is_not_stored_twice_a_different_one_is(tmp_path):
    files = _series(tmp_path)
    (tmp_path / "in" / "copy.dcm").write_bytes(files[0].read_bytes())
    ds = pydicom.dcmread(files[0])
    ds.SeriesDescription = "edited"
    ds.save_as(tmp_path / "in" / "edited.dcm", enforce_file_format=False)
    found = read_studies([tmp_path / "in"])
    got = sort_inputs(found.studies[0], found.errors, settle_seconds=0)
    assert any("copy.dcm" in e and "not stored twice" in e for e in got.not_archived)
    assert [k["file"] for k in got.kept] == [str(tmp_path / "in" / "edited.dcm")]
    keys = {v.sop_instance_uid for v in got.study.verbatim}
    assert len(keys) == 1 and next(iter(keys)).startswith(ds.SOPInstanceUID + "+")


def test_unplaced_inputs_beside_a_study_count_for_it(tmp_path):
    files = _series(tmp_path)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "other.txt").write_text("not DICOM")
    found = read_studies([tmp_path / "in", tmp_path / "elsewhere"])
    assert beside(found.errors, files) == [tmp_path / "in" / "notes.txt"]


def test_the_claim_key_follows_inputs_and_policy():
    study = read_studies([_find("CT_small.dcm")]).studies[0]
    home = "/tmp/unused"
    base = make_config(home, gates={"default": Gate(psnr_min=40.0)})
    key = claim_key("abc", policy_of(base, study))
    assert claim_key("abc", policy_of(base, study)) == key
    assert claim_key("abd", policy_of(base, study)) != key
    assert claim_key("abc", policy_of(make_config(home, mode="near-lossless:2", gates=base.gates), study)) != key
    other_gate = make_config(home, gates={"default": Gate(psnr_min=40.0), "CT": Gate(psnr_min=55.0)})
    assert claim_key("abc", policy_of(other_gate, study)) != key
    unrelated = make_config(home, gates={"default": Gate(psnr_min=40.0), "MR": Gate(psnr_min=55.0)})
    assert claim_key("abc", policy_of(unrelated, study)) == key, "a gate of another modality changes nothing"
