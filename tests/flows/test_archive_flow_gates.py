"""Quality gates in archive_study: escalation to a stricter mode, quarantine, lossy retrieval labelling."""
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from configs import Gate
from quality import metrics
from quality.gates import gate_failures
from tests.helpers.flows import _find, codec_has, make_config, write_study


@pytest.fixture(scope="module")
def lossy_codec():
    if not codec_has("lossy:0"):
        pytest.skip("the installed codec has no lossy mode (foundation placeholder): nothing to escalate from")


def _values(ds, keyword: str) -> list:
    return list(ds[keyword].value) if ds[keyword].VM > 1 else [ds[keyword].value]


def small_ct_study(dest: Path, uid: str) -> list[Path]:
    """CT_small (128x128, 16-bit signed) plus a real 4-slice 16x16 CT series."""
    ct_series = sorted(p for p in _find("17106").parent.iterdir() if p.is_file())
    return write_study(dest, uid, [_find("CT_small.dcm"), *ct_series])


def test_lossy_failing_gate_escalates_to_near_lossless(prefect_server, lossy_codec, tmp_path):
    from archive import ArchiveReader

    from flows.archive_flow import archive_study

    # PSNR with the slice's own range as peak: lossy:0 gives 20-28 dB on these slices, near-lossless:2 51-75 dB
    gate = Gate(psnr_min=45.0, max_error_max=2)
    config = make_config(tmp_path, mode="lossy:0", gates={"default": gate})
    outcome = archive_study(small_ct_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20001"), config)
    assert outcome.status == "released", outcome.reasons
    assert outcome.escalated >= 1
    with ArchiveReader(outcome.archive) as r:
        quality = r.quality()
        stored_modes = {(fr.sop_instance_uid, fr.key.frame): fr.mode for _, fr in r.iter_frames()}
    assert len(quality) == 5 and all(q.gate_passed for q in quality)
    escalated = [q for q in quality if q.escalations]
    assert escalated
    for q in escalated:
        assert q.escalations == ("lossy:0",) and q.mode == "near-lossless:2" and q.attempts == 2
        assert q.max_error <= 2 and q.psnr >= 45.0
        assert stored_modes[(q.sop_instance_uid, q.frame)] == "near-lossless:2"  # the payload really was replaced
    for q in quality:
        if not q.escalations:
            assert q.mode == "lossy:0" and not gate_failures(metrics.figures_of(q), gate)
    ct_small = next(q for q in quality if q.sop_instance_uid == pydicom.dcmread(_find("CT_small.dcm")).SOPInstanceUID)
    assert ct_small.escalations == ("lossy:0",)

    # the audit shows these escalations and the worst slices as original / decoded / difference thumbnails
    from flows.audit_flow import audit_quality

    report = audit_quality(config)
    html = Path(report["html"]).read_text()
    assert 'alt="original"' in html and 'alt="decoded"' in html and 'alt="amplified difference"' in html
    data = json.loads(Path(report["json"]).read_text())
    assert len(data["failures_and_escalations"]) == len(escalated)
    assert data["summary"]["escalated_frames"] == len(escalated)


def test_impossible_gate_quarantines(prefect_server, lossy_codec, tmp_path):
    from archive import ArchiveReader, Catalog

    from flows.archive_flow import archive_study

    config = make_config(tmp_path, mode="lossy:0", gates={"default": Gate(psnr_min=1000.0)},
                         escalate_to="near-lossless:2")  # lossless would meet any gate: stop before it
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20002", [_find("CT_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "quarantined"
    path = Path(outcome.archive)
    assert path.parent == config.paths.quarantine and path.is_file()
    assert not list(config.paths.released.glob("*.h5"))
    reasons = json.loads(path.with_suffix(".reasons.json").read_text())["reasons"]
    assert reasons == outcome.reasons and "PSNR" in reasons[0] and "< 1000" in reasons[0]
    rec = Catalog.from_config(config).find_by_content_hash(outcome.content_hash)
    assert rec.status == "quarantined" and list(rec.reasons) == reasons and rec.path == str(path)
    with ArchiveReader(path) as r:
        (q,) = r.quality()
    assert not q.gate_passed and q.escalations == ("lossy:0",) and q.mode == "near-lossless:2"
    # a rerun of the same content does not try again (no archive loop on the inbox) ...
    assert archive_study(files, config).status == "already-archived"


def test_decode_that_misses_its_checksum_quarantines(prefect_server, tmp_path, monkeypatch):
    """An integrity failure is a defect, not a quality shortfall: no escalation can fix it."""
    from codec import api

    from flows.archive_flow import archive_study

    real_decode = api.decode

    def corrupt(payload, *a, **k):
        values = real_decode(payload, *a, **k).copy()
        values[0, 0] += 1
        return values

    monkeypatch.setattr(api, "decode", corrupt)
    config = make_config(tmp_path, mode="lossless", gates={"default": Gate()})
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20003", [_find("CT_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "quarantined"
    assert any("lossless decode does not reproduce" in r for r in outcome.reasons)
    assert outcome.escalated == 0


def test_lossy_retrieval_is_labelled(prefect_server, lossy_codec, tmp_path):
    from dicom_io import iter_frames, read_studies

    from flows.archive_flow import archive_study
    from flows.retrieve_flow import retrieve_study

    config = make_config(tmp_path, mode="lossy:0", gates={"default": Gate()})
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20004",
                        [_find("CT_small.dcm"), _find("MR_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "released" and outcome.modes_used == {"lossy:0": 2}
    result = retrieve_study(outcome.archive, tmp_path / "out", config)  # by path
    assert result["lossy"] == 2 and result["bit_exact"] == 0
    originals = {i.sop_instance_uid: i for i in read_studies(files).studies[0].instances}
    for inst in read_studies([tmp_path / "out"]).studies[0].instances:
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        assert ds.LossyImageCompression == "01"
        assert "MEDZIP_CNN" in _values(ds, "LossyImageCompressionMethod")
        assert float(_values(ds, "LossyImageCompressionRatio")[-1]) > 1
        assert ds.ImageType[0] == "DERIVED"
        assert ds.SOPInstanceUID not in originals and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        source = originals[ds.SourceImageSequence[-1].ReferencedSOPInstanceUID]
        (a,), (b,) = list(iter_frames(source)), list(iter_frames(inst))
        assert a.shape == b.shape and not np.array_equal(a, b)


def test_auto_stores_each_slice_at_the_largest_k_its_gate_admits(prefect_server, tmp_path):
    """`auto`: every slice is stored near-lossless at a k its gate admits, passes that gate from the file, and
    its payloads are far smaller than the lossless ones of the same study."""
    from archive import ArchiveReader

    from flows.archive_flow import archive_study
    from quality.auto import AUTO

    gate = Gate(psnr_min=50.0, ssim_min=0.99, max_error_max=30)
    sources = small_ct_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20003")
    auto_outcome = archive_study(sources, make_config(tmp_path / "a", mode="auto", gates={"default": gate}))
    lossless = archive_study(sources, make_config(tmp_path / "b", mode="lossless", gates={"default": gate}))
    assert auto_outcome.status == lossless.status == "released", auto_outcome.reasons
    with ArchiveReader(auto_outcome.archive) as r:
        quality = r.quality()
    with ArchiveReader(lossless.archive) as r:
        lossless_bytes = sum(q.payload_bytes for q in r.quality())
    assert len(quality) == 5 and all(q.gate_passed for q in quality)
    ks = [int(q.mode.split(":")[1]) for q in quality if q.mode.startswith("near-lossless:")]
    assert ks and max(ks) > 2, [q.mode for q in quality]  # larger than the ladder's fixed k = 2
    for q in quality:
        assert q.max_error <= 30 and q.ssim >= 0.99 and q.psnr >= 50.0
    assert sum(q.payload_bytes for q in quality) < 0.6 * lossless_bytes
    assert str(AUTO) == auto_outcome.mode_asked


def test_a_file_that_does_not_decode_to_the_measured_values_quarantines(prefect_server, tmp_path, monkeypatch):
    """The figures are measured at encode; the decode from the written file must reproduce those values exactly."""
    from archive import ArchiveReader

    from flows import chunk_work
    from flows.archive_flow import archive_study

    real = chunk_work._measure

    def measured_elsewhere(*args, **kwargs):
        judged, digest = real(*args, **kwargs)
        return judged, "0" * 64

    monkeypatch.setattr(chunk_work, "_measure", measured_elsewhere)
    config = make_config(tmp_path, mode="near-lossless:2", gates={"default": Gate()})
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20005", [_find("CT_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "quarantined" and outcome.escalated == 0
    assert any("does not reproduce the measured values" in r for r in outcome.reasons), outcome.reasons
    with ArchiveReader(outcome.archive) as r:
        (q,) = r.quality()
    assert not q.gate_passed and "does not reproduce the measured values" in " ".join(q.gate_reasons)


def test_wavelet_frames_are_released_within_their_guard_and_labelled_when_retrieved(prefect_server, tmp_path):
    """`auto` under a PSNR-bound gate stores CT_small as a guarded wavelet payload: confirmed from the file,
    released, and retrieved as a lossy-labelled DICOM naming medzip's wavelet method."""
    from dicom_io import WAVELET_METHOD, read_studies

    from flows.archive_flow import archive_study
    from flows.retrieve_flow import retrieve_study

    config = make_config(tmp_path, mode="auto", gates={"default": Gate(psnr_min=45.0, max_error_max=60)})
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20006", [_find("CT_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "released", outcome.reasons
    (mode,) = outcome.modes_used
    assert mode.startswith("wavelet:") and mode.endswith("/60"), outcome.modes_used
    result = retrieve_study(outcome.archive, tmp_path / "out", config)
    assert result["lossy"] == 1 and result["bit_exact"] == 0
    (inst,) = read_studies([tmp_path / "out"]).studies[0].instances
    ds = pydicom.dcmread(inst.path)
    assert ds.LossyImageCompression == "01" and _values(ds, "LossyImageCompressionMethod")[-1] == WAVELET_METHOD
    original = pydicom.dcmread(files[0]).pixel_array.astype(np.int64)
    assert np.abs(ds.pixel_array.astype(np.int64) - original).max() <= 60


def test_decoder_that_disagrees_with_its_encoder_quarantines(prefect_server, tmp_path, monkeypatch):
    """Near-lossless attempts are judged on the encoder's own reconstruction (codec.api.encode_decoded); a decoder
    that gives other values is caught where the archive is read back, not released with figures it does not have."""
    from codec import api

    from flows.archive_flow import archive_study

    real_decode = api.decode

    def corrupt(payload, *a, **k):
        values = real_decode(payload, *a, **k).copy()
        values[0, 0] += 1  # within the gate's max error: only the comparison with the encoder can see it
        return values

    monkeypatch.setattr(api, "decode", corrupt)
    config = make_config(tmp_path, mode="near-lossless:2", gates={"default": Gate(max_error_max=4)})
    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.20009", [_find("CT_small.dcm")])
    outcome = archive_study(files, config)
    assert outcome.status == "quarantined"
    assert any("does not reproduce the measured values" in r for r in outcome.reasons), outcome.reasons
    from archive import ArchiveReader

    with ArchiveReader(Path(outcome.archive)) as r:
        (q,) = r.quality()
    # the figures measured at encode are of values the file does not give back: none are recorded as if they were
    assert not q.gate_passed and q.max_error > 4 and q.psnr < 48
