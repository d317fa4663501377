"""How tests/data/archives/v1.h5 and v1.json were made (kept for the record; the test never runs this).

Run with the code of commit e8d115c (archive format version 1), from a checkout of that commit:
    git worktree add --detach /tmp/mz-e8d115c e8d115c
    cd /tmp/mz-e8d115c && PYTHONPATH=. python /path/to/make_v1.py /path/to/tests/data/archives

Two real frames from pydicom's test files, one lossless and one near-lossless:2, plus one object kept verbatim,
written the way flows/archive_flow.py writes them. v1.json records, per frame, the SHA-256 of the original stored
values and of the decoded values as that commit decoded them.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom

from archive import ArchiveWriter, QualityRow, values_sha256
from codec import api as codec_api
from codec.modes import Mode
from dicom_io import header_bytes, read_file, read_frame, read_verbatim_bytes
from quality import metrics

FILES = [("CT_small.dcm", Mode.lossless()), ("MR_small.dcm", Mode.near_lossless(2))]
VERBATIM = "rtplan.dcm"
STUDY_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"  # CT_small's; MR_small is filed beside it here


def main(out_dir: Path) -> None:
    data = Path(pydicom.__file__).parent / "data" / "test_files"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    path = out_dir / "v1.h5"
    expected = {"format_version": 1, "made_by_commit": commit, "study_uid": STUDY_UID, "frames": [], "verbatim": []}
    rows = []
    with ArchiveWriter(path, study_uid=STUDY_UID, codec="", mode="auto", content_hash="0" * 64,
                       meta={"made_by": "tests/data/archives/make_v1.py", "commit": commit},
                       created_utc="2025-01-01T00:00:00.000000Z", overwrite=True) as w:
        for name, mode in FILES:
            inst = read_file(data / name)
            fmt = inst.pixel
            s = w.add_series(inst.series_instance_uid, inst.modality)
            key = w.add_instance(
                s, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid, modality=inst.modality,
                rows=fmt.rows, columns=fmt.columns, bits_allocated=fmt.bits_allocated, bits_stored=fmt.bits_stored,
                signed=fmt.signed, number_of_frames=inst.number_of_frames, header=header_bytes(inst),
                header_format="dicom-part10-no-pixels",
                extra={"rescale_slope": inst.rescale_slope, "rescale_intercept": inst.rescale_intercept,
                       "source_path": f"pydicom/data/test_files/{name}"})
            values = read_frame(inst, 0)
            payload = codec_api.encode(values, mode, fmt.bits_stored, fmt.signed)
            info = codec_api.payload_info(payload)
            codec = f"{info.get('codec') or 'medzip'}:{info['model_hash']}" if info.get("model_hash") else "medzip"
            w.add_frame(key, 0, payload, codec=codec, mode=str(mode), values_sha256=values_sha256(values))
            decoded = codec_api.decode(payload)
            err = metrics.max_error(values, decoded)
            assert err <= (mode.max_error_bound or 0), (name, err)
            orig_bytes = metrics.uncompressed_bytes(fmt.rows, fmt.columns, 1, fmt.bits_allocated)
            rows.append(QualityRow(
                series=key.series, instance=key.instance, frame=0, sop_instance_uid=inst.sop_instance_uid,
                modality=inst.modality, mode=str(mode), codec=codec, psnr=metrics.psnr(values, decoded, fmt.bits_stored),
                ssim=metrics.ssim(values, decoded), max_error=err, payload_bytes=len(payload),
                original_bytes=orig_bytes, ratio=metrics.ratio(orig_bytes, len(payload)), gate_passed=True))
            expected["frames"].append({
                "source": name, "sop_instance_uid": inst.sop_instance_uid, "series": key.series,
                "instance": key.instance, "frame": 0, "mode": str(mode), "codec": codec,
                "shape": list(values.shape), "dtype": values.dtype.str,
                "original_sha256": values_sha256(values), "decoded_sha256": values_sha256(decoded),
                "max_error": err, "payload_bytes": len(payload)})
        obj = read_file(data / VERBATIM)
        s = w.add_series(obj.series_instance_uid, obj.modality)
        raw = read_verbatim_bytes(obj)
        w.add_verbatim(s, raw, sop_instance_uid=obj.sop_instance_uid, sop_class_uid=obj.sop_class_uid,
                       modality=obj.modality, reason=obj.reason)
        expected["verbatim"].append({"source": VERBATIM, "sop_instance_uid": obj.sop_instance_uid,
                                     "sha256": hashlib.sha256(raw).hexdigest()})
        w.set_quality(rows)
    expected["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out_dir / "v1.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
