"""`make demo`: archive a real multi-series study from the bundled data, retrieve it, audit it.

The bundled files come from different studies, so the demo study is built from them: CT, MR (single and
multi-frame), CR and NM series plus a colour US image and a structured report (kept verbatim), given one
StudyInstanceUID. Nothing is downloaded; the installed packages' files are read, never modified.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

# (package, file): one file per SOP instance; several transfer syntaxes and modalities, plus non-image objects.
DEMO_FILES = (
    ("data_store", "693_J2KR.dcm"),  # CT 512², JPEG 2000 lossless
    ("data_store", "MR2_J2KR.dcm"),  # MR 1024², JPEG 2000 lossless
    ("data_store", "emri_small_RLE.dcm"),  # MR 64², 10 frames, RLE
    ("data_store", "RG1_J2KR.dcm"),  # CR 1955×1841, 15-bit
    ("data_store", "JPEG-LL.dcm"),  # NM 1024×256, JPEG lossless
    ("data_store", "US1_J2KR.dcm"),  # colour US: kept verbatim
    ("pydicom", "test-SR.dcm"),  # structured report: kept verbatim
)
DEMO_STUDY_UID = "2.25.31415926535897932384626433832795028841"


def demo_sources() -> list[Path]:
    import data_store
    import pydicom

    roots = {
        "data_store": Path(data_store.__file__).parent / "data",
        "pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
    }
    return [roots[pkg] / name for pkg, name in DEMO_FILES]


def build_demo_study(dest: Path) -> Path:
    """Write the demo study into `dest`: real files, re-labelled with one StudyInstanceUID and patient.

    Only the study-level identifiers change; pixel data and every other attribute are the originals.
    """
    import pydicom

    dest.mkdir(parents=True, exist_ok=True)
    for src in demo_sources():
        ds = pydicom.dcmread(src)
        ds.StudyInstanceUID = DEMO_STUDY_UID
        ds.PatientID = "MEDZIP-DEMO"
        ds.PatientName = "Demo^Study"
        ds.save_as(dest / src.name, enforce_file_format=False)
    return dest


def main() -> None:
    from configs import load_config
    from flows.archive_flow import archive_paths
    from flows.audit_flow import audit_quality
    from flows.cli_output import outcome_lines
    from flows.retrieve_flow import retrieve_study

    console = Console()
    config = load_config()
    study_dir = build_demo_study(config.home / "demo-input")
    console.rule("1. archive")
    outcomes = archive_paths([study_dir], config)  # the configured policy: `auto` by default
    for o in outcomes:  # the same lines as `medzip archive` prints: status, modes stored, every reason
        for line in outcome_lines(o):
            console.print(line, highlight=False, soft_wrap=True)
    console.rule("2. retrieve")
    retrieved = []
    for o in outcomes:
        if o.get("archive"):
            out = config.paths.retrieved / Path(o["archive"]).stem
            result = retrieve_study(o["archive"], out, config)
            retrieved.append(out)
            console.print(f"{len(result['files'])} DICOM files → {out}", soft_wrap=True)
    console.rule("3. audit")
    report = audit_quality(config)
    console.rule("where things are")
    console.print(f"archives:   {config.paths.released}  (quarantined: {config.paths.quarantine})")
    console.print(f"catalog:    {config.paths.catalog}")
    for out in retrieved:
        console.print(f"retrieved:  {out}")
    console.print(f"audit HTML: {report['html']}\naudit JSON: {report['json']}")


if __name__ == "__main__":
    main()
