"""Load made from real data, for the load benchmark (lab/bench_load.py) and the reliability tests: a series of N
copies of one real slice, and the config such runs use."""
from __future__ import annotations

from pathlib import Path

# The cheapest codec path (learned transform alone, no residual layer) and gates it always meets, so a run spends
# its time in ingest/encode/write/verify/release rather than in escalation.
_CHEAP_CONFIG = """\
[codec]
mode = "{mode}"
escalate_to = "{mode}"

[gates.default]

[schedule]
settle_seconds = 0
max_concurrent_studies = {concurrent}

[runner]
kind = "thread"
max_workers = {workers}
"""


def cheap_config(mode: str = "lossy:0", concurrent: int = 2, workers: int = 2) -> str:
    """TOML text of a config that codes at `mode` only, with empty default gates and a thread runner."""
    return _CHEAP_CONFIG.format(mode=mode, concurrent=concurrent, workers=workers)


def slice_series(inbox: Path, n_slices: int, source: str = "CT_small.dcm", study: str | None = None) -> str:
    """One series of `n_slices` copies of a real slice, each with its own SOP UID, position and instance number."""
    import pydicom
    from pydicom.uid import generate_uid

    from lab.realdata import find

    ds = pydicom.dcmread(find(source))
    study = study or generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    x, y, z = (float(v) for v in ds.get("ImagePositionPatient", [0, 0, 0]))
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(n_slices):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, z + 1.25 * i]
        ds.SliceLocation = z + 1.25 * i
        ds.save_as(inbox / f"{i:05d}.dcm", enforce_file_format=False)
    return study
