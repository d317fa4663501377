"""archive.names: archive file names no UID can turn into a path."""
from __future__ import annotations

from archive import safe_archive_name


def test_safe_archive_name_resists_hostile_uids():
    assert safe_archive_name("1.2.840.1", 2) == "1.2.840.1.v2.h5"
    for uid in ("../../etc/passwd", "/abs/path", "1" * 300, "1.2\x00.3", "..", ""):
        name = safe_archive_name(uid, 1)
        assert "/" not in name and not name.startswith(".") and len(name) < 80
