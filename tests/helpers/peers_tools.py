"""The independent DICOM tools the peer tests run (dicom3tools, dcmtk, Orthanc), and how their output is read.

scripts/install_test_tools.sh installs them (Debian packages); without them the tests skip, naming what is missing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest

INSTALL_HINT = "run scripts/install_test_tools.sh (Debian: dicom3tools dcmtk orthanc orthanc-dicomweb orthanc-gdcm)"


def skip_or_fail(reason: str) -> None:
    """Skip where the tools may legitimately be absent; fail in CI (CI=true), whose `make test` installs them,
    so a broken install can never pass as a green run of skipped tests."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the install step should have provided it)")
    pytest.skip(reason)


def require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed; {INSTALL_HINT}")


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_VALUE = re.compile(r" = <.*>$")


def _normalise(message: str) -> str:
    """An error message without the offending value, so the same defect matches across UID changes."""
    return _VALUE.sub("", message.strip())


def dciodvfy(path: Path) -> Verdict:
    """dciodvfy's errors and warnings for one file (-new: messages name the attribute path)."""
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, errors="replace", timeout=120)
    verdict = Verdict()
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Error - "):
            verdict.errors.append(_normalise(line))
        elif line.startswith("Warning - "):
            verdict.warnings.append(_normalise(line))
    return verdict


def dcmdump(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, text=True, errors="replace", timeout=120)


# dcmj2pnm (dcmtk 3.6.7) decodes native, deflated, RLE, JPEG and JPEG-LS pixel data, not JPEG 2000.
DCMTK_DECODES_JPEG2000 = False


def dcmj2pnm_png(path: Path, png: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dcmj2pnm", "--write-png", "--frame", "1", str(path), str(png)],
        capture_output=True, text=True, errors="replace", timeout=120,
    )


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def has_pixels(path: Path) -> bool:
    return "PixelData" in pydicom.dcmread(path, stop_before_pixels=False, specific_tags=["PixelData"])


def is_jpeg2000(path: Path) -> bool:
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    return ts in (pydicom.uid.JPEG2000Lossless, pydicom.uid.JPEG2000, pydicom.uid.HTJ2KLossless,
                  pydicom.uid.HTJ2KLosslessRPCL, pydicom.uid.HTJ2K)


# dciodvfy 1.00~20220618 (Debian bookworm) treats some Type 1C attributes conditional on "ImageType Value 1 is
# ORIGINAL or MIXED" as forbidden otherwise, but PS3.3 says "May be present otherwise" for them (C.8.13.4 MR Pulse
# Sequence, C.7.6.18.3 Bulk Motion Synchronization, ...). A lossy derivative must say DERIVED (C.7.6.1.1.5), so for
# an Enhanced MR image these messages appear although the file is right. Only this message, only in modules whose
# conditions are of that kind, and only on a DERIVED file made from an ORIGINAL one is set aside (and printed).
_DERIVED_FALSE_POSITIVE = re.compile(
    r"^Error - </\w+\([0-9a-f]{4},[0-9a-f]{4}\)> - Attribute present when condition unsatisfied \(which may not be "
    r"present otherwise\) for Type 1C Conditional - Module=<(MRPulseSequence|BulkMotionSynchronization|"
    r"CardiacSynchronization|RespiratorySynchronization)>$"
)


def _image_type_1(path: Path) -> str:
    value = pydicom.dcmread(path, stop_before_pixels=True).get("ImageType") or [""]
    return str(value[0])


def check_files(written: dict[Path, Path], tmp: Path) -> int:
    """dciodvfy (no error beyond the original's), dcmdump and dcmj2pnm on every written file {file: original},
    a report printed per file; a file with a new SOP Instance UID must carry the lossy labelling. Returns how
    many files are such lossy derivatives."""
    failures = []
    derived = 0
    for path, original in sorted(written.items()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.SOPInstanceUID != pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID:
            derived += 1
            if not (ds.get("LossyImageCompression") == "01" and ds.ImageType[0] == "DERIVED"):
                failures.append(f"{path.name}: new SOP Instance UID without lossy labelling")
        ours, theirs = dciodvfy(path), dciodvfy(original)
        new = sorted(set(ours.errors) - set(theirs.errors))
        known = []
        if _image_type_1(path) == "DERIVED" and _image_type_1(original) == "ORIGINAL":
            known = [e for e in new if _DERIVED_FALSE_POSITIVE.match(e)]
            new = [e for e in new if e not in known]
        inherited = sorted(set(ours.errors) & set(theirs.errors))
        print(f"\n--- {path.name}  (from {original.name})")
        print(f"dciodvfy: {len(new)} new error(s), {len(inherited)} inherited from the original, {len(known)} known "
              "false positive(s), "
              f"{len(ours.warnings)} warning(s)")
        for e in new:
            print(f"  NEW {e}")
        for e in known:
            print(f"  dciodvfy-false-positive (PS3.3: may be present otherwise) {e}")
        for e in inherited:
            print(f"  inherited {e}")
        for w in ours.warnings:
            print(f"  {w}")
        if new:
            failures.append(f"{path.name}: dciodvfy errors not in the original: {new}")

        dump = dcmdump(path)
        if dump.returncode != 0 or "E: " in dump.stderr:
            failures.append(f"{path.name}: dcmdump rc={dump.returncode}: {dump.stderr.strip()[:300]}")

        if not has_pixels(path):
            print("dcmj2pnm: no pixel data (not an image), not rendered")
            continue
        if is_jpeg2000(path):
            print("dcmj2pnm: JPEG 2000 (only verbatim originals are); dcmtk 3.6.7 has no JPEG 2000 decoder, not rendered")
            continue
        png = tmp / f"{path.stem}.png"
        render = dcmj2pnm_png(path, png)
        if render.returncode != 0 or not is_png(png):
            failures.append(f"{path.name}: dcmj2pnm rc={render.returncode}: {render.stderr.strip()[:300]}")
        else:
            print(f"dcmj2pnm: rendered {png.stat().st_size} bytes of PNG")
    assert not failures, "\n".join(failures)
    return derived
