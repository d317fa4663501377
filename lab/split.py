"""The training / validation split of the bundled real images, by whole FILE groups.

The bundled data holds the same image in several transfer syntaxes (693_UNCR / 693_J2KR ...); a group is held out
together so no validation image leaks into training. Held out: one CT study (693_*, plus J2K_pixelrep_mismatch which
is an adjacent slice of it), one MR (MR2_*), one CR (RG1_*). The bench runs on these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

VALIDATION_PREFIXES = ("693_", "J2K_pixelrep_mismatch", "MR2_", "RG1_")


def is_validation(path: Path | str) -> bool:
    return Path(path).name.startswith(VALIDATION_PREFIXES)


def split(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    paths = [Path(p) for p in paths]
    return [p for p in paths if not is_validation(p)], [p for p in paths if is_validation(p)]


def _bundled() -> list[Path]:
    from lab.realdata import grayscale_image_files

    return list(grayscale_image_files())


def training_files() -> list[Path]:
    return split(_bundled())[0]


def validation_files() -> list[Path]:
    return split(_bundled())[1]
