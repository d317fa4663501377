"""lab/loadgen.py: the cheap config is a valid medzip config that codes at its one mode, and a slice series is N
distinct instances of one real slice."""
from __future__ import annotations

import pydicom

from codec.modes import Mode
from configs import load_config
from lab.loadgen import cheap_config, slice_series


def test_cheap_config_loads_and_codes_at_its_mode(tmp_path):
    path = tmp_path / "medzip.toml"
    path.write_text(cheap_config("lossy:1", concurrent=3, workers=4))
    config = load_config(path)
    assert Mode.parse(config.codec.mode) == Mode.lossy(1)
    assert config.schedule.max_concurrent_studies == 3 and config.runner.max_workers == 4


def test_slice_series_is_one_series_of_distinct_instances(tmp_path):
    study = slice_series(tmp_path / "inbox", 3)
    files = sorted((tmp_path / "inbox").iterdir())
    ds = [pydicom.dcmread(f) for f in files]
    assert len(ds) == 3 and {d.StudyInstanceUID for d in ds} == {study}
    assert len({d.SeriesInstanceUID for d in ds}) == 1 and len({d.SOPInstanceUID for d in ds}) == 3
    assert [int(d.InstanceNumber) for d in ds] == [1, 2, 3]
    assert all((d.pixel_array == ds[0].pixel_array).all() for d in ds)
