"""lab/bench_latency.py: the frames are the bundled real 512² CT slices with their own depth and sign, and the CharLS
setting matched to a bpp is the NEAR whose size is nearest."""
from __future__ import annotations

import numpy as np

from lab import anchors
from lab.bench_latency import _jls_near_at_bpp, ct_frames
from lab.bench_pipeline import REAL_CT
from quality import metrics


def test_ct_frames_are_real_512_slices():
    frames = ct_frames()
    assert len(frames) == len(REAL_CT)
    for label, v, bits, signed in frames:
        assert v.shape == (512, 512) and v.dtype.kind in "iu" and 2 <= bits <= 16
        assert (v.dtype.kind == "i") == signed or v.min() >= 0
    assert len({v.tobytes() for _, v, _, _ in frames}) == len(frames)


def test_charls_near_matched_to_a_bpp_is_the_nearest():
    _, v, bits, signed = ct_frames(["693_UNCR.dcm"])[0]
    jls = anchors.available()["jls"]
    size = lambda k: metrics.bpp(len(jls.encode(v, bits, signed, anchors.AnchorSetting.near_lossless(k))), v.size)  # noqa: E731
    target = size(6)
    k = _jls_near_at_bpp(v, bits, signed, target)
    assert abs(size(k) - target) <= min(abs(size(j) - target) for j in (4, 5, 7, 8))
    assert _jls_near_at_bpp(v, bits, signed, 1e-6) == 255  # nothing is that small: the largest NEAR
    assert np.isfinite(size(k))
