"""`lab.joint_latents`: its code lengths are real ones. The context is causal in raster order, the near-lossless
reconstruction keeps its bound, and the residual's bins carry a whole distribution."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

jl = pytest.importorskip("lab.joint_latents")

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def test_masked_convolution_sees_only_earlier_pixels_in_raster_order():
    conv = jl.MaskedConv(4, 5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 12, 12, 1)).astype(np.float32)
    base = np.asarray(conv(x))
    i, j = 6, 5
    x2 = x.copy()
    x2[0, i, j, 0] += 10.0
    changed = np.abs(np.asarray(conv(x2)) - base).max(axis=-1)[0] > 1e-6
    rows, cols = np.nonzero(changed)
    assert changed.any()
    assert all((r, c) > (i, j) for r, c in zip(rows, cols))  # never the pixel itself nor one before it


@pytest.mark.parametrize("k", [0, 1, 4, 16])
def test_near_lossless_keeps_the_bound(k):
    rng = np.random.default_rng(k)
    v = rng.integers(-3000, 3000, size=(1, 32, 32, 1)).astype(np.float32)
    p = v + rng.integers(-200, 200, size=v.shape).astype(np.float32)
    decoded = np.asarray(jl.near_lossless(v, p, float(k)))
    assert np.abs(decoded - v).max() <= k
    q = (decoded - p) / (2 * k + 1)
    assert np.array_equal(q, np.round(q))


@pytest.mark.parametrize("k", [0, 2, 8])
def test_the_bins_of_every_q_hold_the_whole_distribution(k):
    step = 2 * k + 1
    q = np.arange(-400, 401, dtype=np.float32)
    decoded = (37.0 + q * step).reshape(1, -1, 1, 1)
    mu = np.array([[[[30.0, 61.0]]]], np.float32)
    scale = np.array([[[[3.0, 25.0]]]], np.float32)
    logit = np.array([[[[0.3, -0.7]]]], np.float32)
    p = np.exp(np.asarray(jl.log_prob(decoded, float(k), mu, scale, logit), np.float64))
    assert p.sum() == pytest.approx(1.0, abs=2e-4)
    assert p.argmax() == np.abs(decoded.ravel() - 30.0).argmin()


def test_an_untrained_model_prices_a_real_slice():
    from lab.frames import frames_of, instance

    inst, _ = instance(CT_SMALL)
    values = next(frames_of(inst)).values
    model = jl.JointCodec(latents=4, width=8)
    latent, residual = jl.slice_bits(model, values[:60, :50], 0)  # not a multiple of 8: padded, padding not counted
    assert latent > 0 and np.isfinite(residual) and residual > 60 * 50  # a stranger pays more than a bit a pixel


def test_no_pixel_is_priced_by_what_comes_after_it():
    """The whole residual model, two masked layers and the values read too: a change at one pixel leaves the code
    length of every pixel before it in raster order alone (the mask counts those pixels only)."""
    model = jl.JointCodec(width=8, use_latents=False, depth=2, value_context=True)
    rng = np.random.default_rng(1)
    v = rng.integers(0, 400, size=(1, 16, 16, 1)).astype(np.float32)
    lo, k = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32)
    i, j = 9, 7
    before = np.zeros_like(v)
    before[0, :i] = 1
    before[0, i, :j] = 1
    v2 = v.copy()
    v2[0, i, j, 0] += 150
    priced = [float(np.asarray(model((x, lo, k, m)))[0, 1]) for x in (v, v2) for m in (before, np.ones_like(v))]
    assert priced[0] == pytest.approx(priced[2], rel=1e-6)
    assert priced[1] != pytest.approx(priced[3], rel=1e-6)
