"""File names of archives: a study's archive name that no UID can turn into a path."""
from __future__ import annotations

import hashlib
import re

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def safe_archive_name(study_uid: str, version: int) -> str:
    """A file name for a study's archive that no UID can turn into a path ("../", "/", very long, odd bytes)."""
    if _UID_RE.match(study_uid) and len(study_uid) <= 64:
        stem = study_uid
    else:
        stem = "study-" + hashlib.sha256(study_uid.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"{stem}.v{int(version)}.h5"
