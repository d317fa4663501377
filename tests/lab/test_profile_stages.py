"""lab/profile_stages.py: stage wall times nest one at a time, parts done in other threads are summed under the
stage that was running, generators are timed per item, and a py-spy raw file is summarised by function."""
from __future__ import annotations

import threading
import time

from lab.profile_stages import Stages, pyspy_top


def test_parts_are_counted_under_the_running_stage_from_any_thread():
    st = Stages()
    work = st.part("work", lambda: time.sleep(0.05))

    def stage_body():
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    st.stage("encode", stage_body)()
    work()  # outside any stage
    assert st.wall["encode"] >= 0.05 and st.current == "outside"
    assert st.parts[("encode", "work")] >= 0.1 and st.calls[("encode", "work")] == 2  # thread-seconds add up
    assert st.calls[("outside", "work")] == 1
    spin = st.part("spin", lambda: sum(range(2_000_000)))
    spin()
    assert st.cpu[("outside", "spin")] > 0.01 and st.cpu[("encode", "work")] < 0.02

def test_generators_are_timed_per_item_and_exceptions_still_count():
    st = Stages()

    def frames():
        for i in range(3):
            time.sleep(0.01)
            yield i

    assert list(st.part_iter("read", frames)()) == [0, 1, 2]
    assert st.parts[("outside", "read")] >= 0.03 and st.calls[("outside", "read")] == 3
    assert st.cpu[("outside", "read")] < 0.02  # sleeping is no CPU time

    def boom():
        raise ValueError("x")

    try:
        st.stage("s", st.part("p", boom))()
    except ValueError:
        pass
    assert st.calls[("s", "p")] == 1 and "s" in st.wall and st.current == "outside"


def test_pyspy_summary_merges_lines_and_sets_waiting_apart(tmp_path):
    raw = tmp_path / "p.raw"
    raw.write_text("main (a.py:1);encode (codec/x.py:10) 6\n"
                   "main (a.py:1);encode (codec/x.py:12) 2\n"
                   "main (a.py:1);decode (codec/x.py:40) 3\n"
                   "_bootstrap (threading.py:1);Condition.wait (threading.py:320) 9\n")
    r = pyspy_top(str(raw), top=2)
    assert r["samples"] == 20 and r["idle"] == 9
    assert r["own"] == [("encode (codec/x.py)", 8), ("decode (codec/x.py)", 3)]
    assert dict(r["inclusive"])["main (a.py)"] == 11
