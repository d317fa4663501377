"""Making a file really unreadable in a test, even when the tests run as root."""
from __future__ import annotations

import os
import shutil

import pytest


def without_read_bypass() -> list[str]:
    """A command prefix under which chmod 000 really makes a file unreadable: none for a normal user; for root,
    setpriv without the capabilities that let root read any file. Skips when neither is possible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: permissions cannot be withheld")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
