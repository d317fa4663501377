"""Pure parts of the flows: the escalation ladder and the inbox's settle rule (no Prefect server needed)."""
import os
import time

import pytest

from codec.modes import Mode
from configs import Gate
from flows.escalation import next_mode
from tests.flows_helpers import _find, write_study

L = Mode.parse


@pytest.mark.parametrize(("current", "gate", "ceiling", "expected"), [
    ("lossy:3", Gate(psnr_min=50), "lossless", "near-lossless:2"),
    ("lossy:3", Gate(max_error_max=1), "lossless", "near-lossless:1"),
    ("lossy:3", Gate(max_error_max=0), "lossless", "lossless"),
    ("near-lossless:2", Gate(psnr_min=50), "lossless", "lossless"),
    ("near-lossless:5", Gate(psnr_min=50), "lossless", "near-lossless:2"),
    ("lossy:3", Gate(psnr_min=50), "near-lossless:4", "near-lossless:4"),
    ("lossy:3", Gate(psnr_min=50), "lossy:3", None),
    ("lossless", Gate(psnr_min=1000), "lossless", None),
])
def test_escalation_ladder(current, gate, ceiling, expected):
    got = next_mode(L(current), gate, L(ceiling))
    assert (str(got) if got else None) == expected


def test_inbox_waits_for_files_to_settle(tmp_path):
    from flows.inbox import scan_inbox

    inbox = tmp_path / "inbox"
    old = write_study(inbox / "a", "1.2.826.0.1.3680043.8.498.40001", [_find("CT_small.dcm")])
    new = write_study(inbox / "b", "1.2.826.0.1.3680043.8.498.40002", [_find("MR_small.dcm")])
    now = time.time()
    for f in old:
        os.utime(f, (now - 120, now - 120))
    settled, waiting = scan_inbox(inbox, settle_seconds=60, now=now)
    assert [s.study_uid for s in settled] == ["1.2.826.0.1.3680043.8.498.40001"]
    assert settled[0].files == sorted(old)
    assert waiting == ["1.2.826.0.1.3680043.8.498.40002"]
    # a file still being written (not readable yet) may belong to any study: nothing is archived meanwhile
    (inbox / "partial.dcm").write_bytes(new[0].read_bytes()[:300])
    for f in new:
        os.utime(f, (now - 120, now - 120))
    settled, waiting = scan_inbox(inbox, settle_seconds=60, now=now)
    assert settled == [] and len(waiting) == 2
    os.utime(inbox / "partial.dcm", (now - 120, now - 120))
    settled, _ = scan_inbox(inbox, settle_seconds=60, now=now)
    assert len(settled) == 2
