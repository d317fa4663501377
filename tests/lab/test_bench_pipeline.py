"""lab/bench_pipeline.py: the study is N distinct instances whose pixels are real 512² CT slices, the log split is
read from Prefect's own lines, and a 3-slice run reports every figure and leaves an archive that decodes to the
inputs, next to a CharLS transcode that round-trips them."""
from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from lab.bench_pipeline import REAL_CT, bench, build_study, check_archive, log_phases, real_ct_frames


def test_study_cycles_through_the_real_ct_slices(tmp_path):
    paths = build_study(tmp_path, len(REAL_CT) + 1)
    ds = [pydicom.dcmread(p) for p in paths]
    frames = real_ct_frames()
    assert len({d.SOPInstanceUID for d in ds}) == len(paths) and len({d.StudyInstanceUID for d in ds}) == 1
    assert [int(d.InstanceNumber) for d in ds] == list(range(1, len(paths) + 1))
    for i, d in enumerate(ds):
        assert d.pixel_array.shape == (512, 512) and np.array_equal(d.pixel_array, frames[i % len(frames)])
    # the real slices differ from each other (not one slice copied)
    assert len({f.tobytes() for f in frames}) == len(frames)


def test_log_phases_from_prefect_lines():
    import time
    from datetime import datetime

    start = datetime(2026, 11, 3, 10, 0, 0).timestamp()
    log = "\n".join([
        "10:00:05.000 | INFO    | prefect - Starting temporary server on http://127.0.0.1:8663",
        "See https://www.prefect.io/docs for more information.",
        "10:00:20.500 | INFO    | Flow run 'x' - Beginning flow run 'x' for flow 'archive-study'",
        "10:00:21.000 | INFO    | Task run 'ingest-1' - Finished in state Completed()",
        "10:00:30.500 | INFO    | Flow run 'x' - Finished in state Completed()",
    ])
    got = log_phases(log, start, 32.0)
    assert got == pytest.approx({"before_flow_s": 20.5, "flow_s": 10.0, "after_flow_s": 1.5, "until_server_s": 5.0,
                                 "server_start_s": 15.5})
    assert log_phases("no prefect lines here", time.time(), 1.0) == {}


def test_three_slices_end_to_end(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    r = bench(3, tmp_path, check=True, dcmtk=True, api_url=PREFECT_API_URL.value())
    m, c = r["medzip"], r["charls"]
    assert m["status"] == ["released"] and r["checked_frames"] == 3
    # check_archive is what says "decodes to the originals": it must fail when one input pixel differs
    paths = sorted((tmp_path / "study").iterdir())
    ds = pydicom.dcmread(paths[1])
    arr = ds.pixel_array.copy()
    arr[100, 100] += 1
    ds.PixelData = arr.astype("<i2").tobytes()
    ds.save_as(paths[1])
    with pytest.raises(AssertionError, match=str(ds.SOPInstanceUID)):
        check_archive(m["archive"], paths)
    for key in ("wall_s", "peak_rss_mb", "peak_tree_rss_mb", "slices_per_s", "flow_s", "load"):
        assert math.isfinite(m[key]) and m[key] > 0, key
    assert m["prefect_start_s"] == 0.0 and r["prefect_startup"] is None
    # wait4's figure covers every descendant the child waited for (Prefect's server included), the sampled tree
    # figure can miss a short peak: both are real memory of the run, neither bounds the other
    assert m["peak_tree_rss_mb"] > 100 and m["peak_rss_mb"] > 100
    assert c["wall_s"] > 0 and c["ratio"] > 1.5 and "dcmtk" in r
    assert r["ratio_wall"] == pytest.approx(m["wall_s"] / c["wall_s"])
    assert r["ratio_flow_only"] == pytest.approx(m["flow_s"] / c["wall_s"])
