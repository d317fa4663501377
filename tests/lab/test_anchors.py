"""Classical anchors (lab/anchors.py) on real slices: lossless is bit-exact, near-lossless keeps |e| <= k."""
from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from lab import anchors
from quality import metrics
from tests.realdata import grayscale_image_files

# small-to-medium real slices covering signed/unsigned and 8, 12, 14 and 16 bits stored
_NAMES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "693_UNCI.dcm", "mlut_18.dcm", "vlut_04.dcm")


def _slices():
    found = {p.name: p for p in grayscale_image_files()}
    out = []
    for name in _NAMES:
        ds = pydicom.dcmread(found[name])
        arr = ds.pixel_array
        arr = arr[0] if arr.ndim == 3 else arr
        out.append(pytest.param(np.ascontiguousarray(arr), int(ds.BitsStored), ds.PixelRepresentation == 1, id=name))
    return out


SLICES = _slices()
ANCHORS = list(anchors.available().values())


def test_all_four_anchors_available():
    assert set(anchors.available()) == {"j2k", "jls", "jxl", "htj2k"}, anchors.unavailable()


@pytest.mark.parametrize("anchor", ANCHORS, ids=lambda a: a.key)
@pytest.mark.parametrize("values,bits,signed", SLICES)
def test_lossless_is_bit_exact(anchor, values, bits, signed):
    payload = anchor.encode(values, bits, signed)
    decoded = anchor.decode(payload, bits, signed, values.dtype)
    assert decoded.dtype == values.dtype
    assert np.array_equal(decoded, values)
    assert 0 < len(payload) < values.nbytes * 1.2


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("values,bits,signed", SLICES)
def test_jpegls_near_lossless_keeps_bound(k, values, bits, signed):
    jls = anchors.ALL_ANCHORS["jls"]
    payload = jls.encode(values, bits, signed, anchors.AnchorSetting.near_lossless(k))
    decoded = jls.decode(payload, bits, signed, values.dtype)
    assert metrics.max_error(values, decoded) <= k
    assert len(payload) < len(jls.encode(values, bits, signed))


def test_signed_offset_only_for_unsigned_only_codecs():
    a = anchors.ALL_ANCHORS
    assert a["jls"].offset(12, True) == 2048 and a["jxl"].offset(16, True) == 32768
    assert a["j2k"].offset(12, True) == 0 and a["htj2k"].offset(12, True) == 0
    assert a["jls"].offset(12, False) == 0


@pytest.mark.parametrize("anchor", ANCHORS, ids=lambda a: a.key)
def test_unsupported_input_is_a_clear_error(anchor):
    deep = np.zeros((16, 16), np.int32)
    with pytest.raises(anchors.AnchorError, match="BitsStored 20"):
        anchor.encode(deep, 20, False)
    with pytest.raises(anchors.AnchorError, match="2-D"):
        anchor.encode(np.zeros((2, 8, 8), np.uint16), 12, False)
    with pytest.raises(anchors.AnchorError, match="exceed"):
        anchor.encode(np.full((8, 8), 5000, np.uint16), 12, False)
    if not anchor.near_lossless:
        with pytest.raises(anchors.AnchorError, match="no near-lossless"):
            anchor.encode(np.zeros((8, 8), np.uint16), 12, False, anchors.AnchorSetting.near_lossless(2))


@pytest.mark.parametrize("key", ["j2k", "jxl"])
def test_rate_matcher_hits_targets_on_real_ct(key):
    values, bits, signed = SLICES[0].values
    anchor = anchors.ALL_ANCHORS[key]
    matcher = anchors.RateMatcher(anchor, values, bits, signed)
    psnrs = []
    for target in (0.5, 1.0, 2.0):
        hit = matcher.match(target)
        assert hit.bpp == pytest.approx(target, rel=0.05)
        assert metrics.bpp(len(hit.payload), values.size) == pytest.approx(hit.bpp)
        decoded = anchor.decode(hit.payload, bits, signed, values.dtype)
        psnrs.append(metrics.psnr(values, decoded, bits))
    assert all(math.isfinite(p) for p in psnrs) and psnrs == sorted(psnrs)
