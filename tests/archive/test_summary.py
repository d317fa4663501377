"""archive.summary: what `medzip info` reports of an archive, from its tables alone."""
from __future__ import annotations

import numpy as np

from archive import ArchiveWriter, QualityRow, values_sha256
from archive.summary import archive_summary


def _archive(path, rows: list[dict]):
    """An archive of one series with one frame per row (payloads are opaque bytes: the summary never decodes)."""
    values = np.zeros((4, 4), np.uint16)
    with ArchiveWriter(path, study_uid="1.2", codec="c", mode="auto") as w:
        s = w.add_series("1.2.1", "CT")
        quality = []
        for i, row in enumerate(rows):
            k = w.add_instance(s, sop_instance_uid=f"1.2.1.{i + 1}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                               modality="CT", rows=4, columns=4, bits_allocated=16, bits_stored=12, signed=False,
                               number_of_frames=1, header=b"h", header_format="dicom-json")
            frame = w.add_frame(k, 0, b"p" * row["payload_bytes"], codec="c", mode=row["mode"],
                                values_sha256=values_sha256(values))
            quality.append(QualityRow(
                series=frame.series, instance=frame.instance, frame=0, sop_instance_uid=f"1.2.1.{i + 1}",
                modality="CT", mode=row["mode"], codec="c", psnr=row.get("psnr", 60.0), ssim=0.999, max_error=2,
                payload_bytes=row["payload_bytes"], original_bytes=32, ratio=32 / row["payload_bytes"],
                gate_passed=True, lossless_bytes=row["lossless_bytes"]))
        w.set_quality(quality)


def test_bytes_saved_against_lossless_over_the_frames_whose_lossless_size_is_known(tmp_path):
    _archive(tmp_path / "a.h5", [
        {"mode": "near-lossless:8", "payload_bytes": 10, "lossless_bytes": 25},
        {"mode": "near-lossless:4", "payload_bytes": 12, "lossless_bytes": 20},
        {"mode": "near-lossless:2", "payload_bytes": 15, "lossless_bytes": -1},  # not measured: left out
    ])
    doc = archive_summary(tmp_path / "a.h5")
    assert doc["modes_stored"] == {"near-lossless:8": 1, "near-lossless:4": 1, "near-lossless:2": 1}
    assert doc["frames_with_lossless_size"] == 2 and doc["lossless_bytes"] == 45
    assert doc["saved_vs_lossless_bytes"] == 45 - 22 and doc["saved_vs_lossless_share"] == 23 / 45
    assert doc["payload_bytes"] == 37


def test_no_saved_bytes_when_no_lossless_size_was_measured(tmp_path):
    _archive(tmp_path / "b.h5", [{"mode": "near-lossless:2", "payload_bytes": 9, "lossless_bytes": -1}])
    doc = archive_summary(tmp_path / "b.h5")
    assert "saved_vs_lossless_bytes" not in doc and doc["frames"] == 1
