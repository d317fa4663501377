"""archive_study / retrieve_study / audit_quality on a real multi-series study, against a real Prefect server."""
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.helpers.flows import _find, file_digests, make_config, write_study

STUDY_UID = "1.2.826.0.1.3680043.8.498.10001"


def lossless_run(home: Path) -> dict:
    from flows.archive_flow import archive_study

    files = write_study(home / "input", STUDY_UID)
    before = file_digests(files)
    config = make_config(home, mode="lossless")
    outcome = archive_study([home / "input"], config)
    return {"home": home, "files": files, "before": before, "config": config, "outcome": outcome}


def check_released_with_every_slice_measured(lossless_run):
    from archive import ArchiveReader, Catalog
    from prefect.artifacts import Artifact

    from flows.artifacts import artifact_key

    o, config = lossless_run["outcome"], lossless_run["config"]
    assert o.status == "released", o.reasons
    assert Path(o.archive).parent == config.paths.released and Path(o.archive).is_file()
    assert o.frames == 4 + 1 + 10 and o.verbatim == 2
    with ArchiveReader(o.archive) as r:
        quality = r.quality()
        frames = list(r.iter_frames())
    assert len(quality) == len(frames) == 15
    for q in quality:
        assert q.gate_passed and q.mode == "lossless" and q.max_error == 0
        assert math.isinf(q.psnr) and q.ssim == 1.0 and q.payload_bytes > 0 and q.ratio > 0
    rec = Catalog.from_config(config).find_by_content_hash(o.content_hash)
    assert rec.status == "released" and rec.path == o.archive and rec.n_frames == 15
    assert set(rec.modalities) == {"CT", "MR", "SR"}
    assert not list(config.paths.work.glob("*.h5")), "nothing left behind in work/"
    table = Artifact.get(artifact_key("quality", STUDY_UID))
    summary = Artifact.get(artifact_key("archive", STUDY_UID))
    assert table.type == "table" and summary.type == "markdown"
    assert Path(o.archive).name in summary.data and "released" in summary.data


def check_inputs_never_modified(lossless_run):
    assert file_digests(lossless_run["files"]) == lossless_run["before"]


def check_rerun_is_idempotent(lossless_run):
    from archive import Catalog

    from flows.archive_flow import archive_study

    config = lossless_run["config"]
    again = archive_study(lossless_run["files"], config)
    assert again.status == "already-archived"
    assert again.archive == lossless_run["outcome"].archive
    assert len(Catalog.from_config(config).find_by_study(STUDY_UID)) == 1
    assert len(list(config.paths.released.glob("*.h5"))) == 1


def check_retrieval_bit_exact_with_original_uids(lossless_run, tmp_path):
    from dicom_io import iter_frames, read_studies

    from flows.retrieve_flow import retrieve_study

    result = retrieve_study(STUDY_UID, tmp_path / "out", lossless_run["config"])  # through the catalog
    assert result["bit_exact"] == 6 and result["lossy"] == 0 and result["verbatim"] == 2
    out = tmp_path / "out"
    assert all(Path(f).resolve().is_relative_to(out.resolve()) for f in result["files"])
    original = {i.sop_instance_uid: i for i in read_studies(lossless_run["files"]).studies[0].instances}
    rebuilt = read_studies([out]).studies[0]
    assert {i.sop_instance_uid for i in rebuilt.instances} == set(original)
    for inst in rebuilt.instances:
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        assert "LossyImageCompression" not in ds or ds.LossyImageCompression == "00"
        for a, b in zip(iter_frames(original[inst.sop_instance_uid]), iter_frames(inst), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # verbatim objects come back byte for byte
    src = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: Path(f).read_bytes()
           for f in lossless_run["files"]}
    for obj in rebuilt.verbatim:
        assert obj.path.read_bytes() == src[obj.sop_instance_uid]


def check_retrieve_refuses_unknown_study(lossless_run, tmp_path):
    from flows.retrieve_flow import RetrieveError, retrieve_study

    with pytest.raises(RetrieveError, match="neither an archive file nor a StudyInstanceUID"):
        retrieve_study("1.2.3.4.999", tmp_path / "x", lossless_run["config"])


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.headings, self._h = 0, [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables += 1
        if tag == "img":
            self.images.append(attrs)
        self._h = tag == "h2"

    def handle_data(self, data):
        if self._h:
            self.headings.append(data)
            self._h = False


def check_audit_reports_tables_and_plots(lossless_run):
    import json

    from flows.audit_flow import audit_quality

    report = audit_quality(lossless_run["config"], modality="CT", status="released")
    parser = _Html()
    parser.feed(Path(report["html"]).read_text())
    assert {"Summary", "Archives", "PSNR and SSIM per study", "PSNR and SSIM per slice",
            "Compression ratio distribution", "Worst slices", "Gate failures and escalations",
            "Model and mode of every released archive"} <= set(parser.headings)
    assert parser.tables >= 4
    plots = [i for i in parser.images if i["src"].startswith("data:image/png;base64,")]
    assert len(plots) >= 3 and all(not i["src"].startswith("http") for i in parser.images)
    data = json.loads(Path(report["json"]).read_text())
    assert data["summary"]["frames"] == 15 and data["archives"][0]["study_uid"] == STUDY_UID
    assert report["archives"][0]["status"] == "released"
    assert audit_quality(lossless_run["config"], modality="DX")["summary"]["archives"] == 0


def test_lossless_study_archived_retrieved_and_audited(prefect_server, tmp_path):
    """One archive run of the real study (the expensive part, so it runs once, not once per xdist worker), then
    each property checked on it in turn."""
    run = lossless_run(tmp_path / "home")
    check_released_with_every_slice_measured(run)
    check_inputs_never_modified(run)
    check_rerun_is_idempotent(run)
    check_retrieval_bit_exact_with_original_uids(run, tmp_path)
    check_retrieve_refuses_unknown_study(run, tmp_path)
    check_audit_reports_tables_and_plots(run)


def test_changed_study_becomes_new_version(prefect_server, tmp_path):
    from archive import Catalog

    from flows.archive_flow import archive_study

    uid = "1.2.826.0.1.3680043.8.498.10002"
    config = make_config(tmp_path)
    files = write_study(tmp_path / "in", uid, [_find("CT_small.dcm")])
    first = archive_study(files, config)
    ds = pydicom.dcmread(files[0])
    ds.SeriesDescription = "corrected"
    ds.save_as(files[0], enforce_file_format=False)
    second = archive_study(files, config)
    assert (first.status, second.status) == ("released", "released")
    assert (first.version, second.version) == (1, 2) and first.archive != second.archive
    assert [r.version for r in Catalog.from_config(config).find_by_study(uid)] == [1, 2]
