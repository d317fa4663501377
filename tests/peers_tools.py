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
