"""The study the peer tests judge and send: the demo's multi-series study built from the bundled real files,
written back by medzip lossless or with lossy labelling.

`retrieved_study` archives it with flows.archive_flow.archive_paths and writes it back with
flows.retrieve_flow.retrieve_study (the real path); `written_study` rebuilds it straight through dicom_io.writer
(the same writer retrieve uses, without the archive), with a stand-in lossy decode for the lossy case.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom


def build_input(dest: Path) -> Path:
    from flows.demo import build_demo_study

    return build_demo_study(dest)


# A smaller multi-series study for the tests that run the whole archive → retrieve path (the learned codec on the
# demo's 1024² MR and 1955×1841 CR costs minutes on a shared 2-core machine): CT, MR, multi-frame MR and NM images
# plus a colour US image and an SR kept verbatim, from pydicom's and pydicom-data's files.
SMALL_STUDY = (
    ("pydicom", "CT_small.dcm"),  # CT 128², explicit little endian
    ("pydicom", "MR_small.dcm"),  # MR 64²
    ("data_store", "emri_small_RLE.dcm"),  # MR 64², 10 frames, RLE
    ("data_store", "JPEG-LL.dcm"),  # NM 1024×256, JPEG lossless
    ("data_store", "US1_J2KR.dcm"),  # colour US: verbatim
    ("pydicom", "test-SR.dcm"),  # SR: verbatim
)
SMALL_STUDY_UID = "2.25.27182818284590452353602874713526624977"


def build_small_input(dest: Path) -> Path:
    """SMALL_STUDY relabelled with one StudyInstanceUID and patient (pixels and every other attribute untouched)."""
    import data_store

    roots = {"pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
             "data_store": Path(data_store.__file__).parent / "data"}
    dest.mkdir(parents=True, exist_ok=True)
    for pkg, name in SMALL_STUDY:
        ds = pydicom.dcmread(roots[pkg] / name)
        ds.StudyInstanceUID = SMALL_STUDY_UID
        ds.PatientID, ds.PatientName = "MEDZIP-PEERS", "Peers^Study"  # one patient, as a PACS expects of one study
        ds.save_as(dest / name, enforce_file_format=False)
    return dest


def _perturb(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in lossy decode: the original plus noise of ±3, kept inside the frame's own value range."""
    noisy = frame.astype(np.int64) + rng.integers(-3, 4, size=frame.shape)
    return np.clip(noisy, int(frame.min()), int(frame.max())).astype(frame.dtype)


def written_study(src: Path, out: Path, lossy: bool) -> dict[Path, Path]:
    """Every instance rebuilt by dicom_io.writer from its header and stored values, verbatim objects copied:
    {written file: original file}."""
    from dicom_io import LossyInfo, header_bytes, iter_frames, read_studies, read_verbatim_bytes, write_instance
    from dicom_io import write_verbatim

    result = read_studies([src])
    assert not result.all_errors, result.all_errors
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for study in result.studies:
        for inst in study.instances:
            frames = list(iter_frames(inst))
            if lossy:
                frames = [_perturb(f, rng) for f in frames]
            path = write_instance(header_bytes(inst), frames, out, lossy=LossyInfo(ratio=12.5) if lossy else None)
            written[path] = inst.path
        for obj in study.verbatim:
            written[write_verbatim(read_verbatim_bytes(obj), out)] = obj.path
    return written


def originals_by_uid(src: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in src.iterdir()}


def original_of(path: Path, originals: dict[str, Path]) -> Path:
    """The input file a written file came from: same SOP Instance UID (lossless, verbatim) or, for a lossy
    derivative, the instance its SourceImageSequence names as uncompressed predecessor."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if str(ds.SOPInstanceUID) in originals:
        return originals[str(ds.SOPInstanceUID)]
    for item in reversed(ds.get("SourceImageSequence", [])):
        if str(item.ReferencedSOPInstanceUID) in originals:
            return originals[str(item.ReferencedSOPInstanceUID)]
    raise AssertionError(f"{path.name}: no original with its SOP Instance UID or a SourceImageSequence reference")


def image_series(files) -> dict[str, list[Path]]:
    """Files with pixel data, by SeriesInstanceUID."""
    series: dict[str, list[Path]] = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if "Rows" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(Path(f))
    return series


def retrieved_study(src: Path, home: Path, mode: str) -> list[Path]:
    """The real path: flows.archive_flow.archive_paths archives `src` in `mode` (no gates, no escalation, so a lossy
    mode stays lossy), then flows.retrieve_flow.retrieve_study writes it back; returns the files written.
    Needs a Prefect API (tests use prefect_test_harness)."""
    from configs import Config, Gate
    from configs.schema import CodecSettings, Paths, Runner
    from flows.archive_flow import archive_paths
    from flows.retrieve_flow import retrieve_study

    config = Config(home=home, paths=Paths().resolved(home), codec=CodecSettings(mode=mode, escalate_to=mode),
                    gates={"default": Gate()}, runner=Runner(kind="thread", max_workers=2))
    [outcome] = archive_paths([src], config)
    assert outcome["status"] == "released" and outcome.get("archive"), outcome
    result = retrieve_study(outcome["archive"], home / "retrieved", config)
    return [Path(f) for f in result["files"]]
