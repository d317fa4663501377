"""lab/frames.py: frames of stored values read through dicom_io, with what the bench needs to know of each."""
from __future__ import annotations

import numpy as np
import pydicom

from lab import frames
from lab.realdata import find


def test_frames_of_a_real_ct_slice():
    path = find("CT_small.dcm")
    inst, why = frames.instance(path)
    assert why is None
    (frame,) = list(frames.frames_of(inst))
    ds = pydicom.dcmread(path)
    assert frame.modality == "CT" and frame.bits_stored == int(ds.BitsStored) and frame.signed
    assert np.array_equal(frame.values, ds.pixel_array)
    assert [f.shape for f in frames.read_frames(path)] == [ds.pixel_array.shape]


def test_an_object_without_pixels_says_why_it_is_not_benched():
    inst, why = frames.instance(find("test-SR.dcm"))
    assert inst is None and "verbatim" in why
