"""lab/split.py: the held-out images never reach training, and a group held out is held out whole."""
from __future__ import annotations

from pathlib import Path

from lab import split


def test_groups_are_held_out_whole():
    names = ["693_UNCR.dcm", "693_J2KR.dcm", "J2K_pixelrep_mismatch.dcm", "MR2_UNCR.dcm", "RG1_J2KR.dcm",
             "CT_small.dcm", "MR_small.dcm", "x693_UNCR.dcm"]
    train, held = split.split(Path("/data") / n for n in names)
    assert [p.name for p in held] == names[:5]
    assert [p.name for p in train] == names[5:]


def test_the_bundled_data_splits_without_overlap():
    train, held = split.training_files(), split.validation_files()
    assert train and held and not set(train) & set(held)
    assert {p.name.split("_")[0] for p in held} >= {"693", "MR2", "RG1"}
    assert not any(split.is_validation(p) for p in train)
