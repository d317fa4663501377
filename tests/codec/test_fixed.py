"""codec/fixed.py: the integer decoder networks equal an int64 reference exactly (so summation order cannot change
them) and agree with the float operations they stand for."""
from __future__ import annotations

import numpy as np
import pytest

from codec import fixed


def _activations(rng, shape, scale=2.0):
    return np.round(rng.normal(0, scale, shape) * (1 << fixed.FA))  # integer-valued float64 at scale 2**FA


def _float_conv(x, kernel, bias):
    """'same' stride-1 convolution in float64, the operation conv3x3 stands for."""
    kh, kw, _, cout = kernel.shape
    ph, pw = kh // 2, kw // 2
    b, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = np.zeros((b, h, w, cout)) + bias
    for dy in range(kh):
        for dx in range(kw):
            out += np.einsum("bhwc,co->bhwo", xp[:, dy : dy + h, dx : dx + w], kernel[dy, dx])
    return out


def test_conv_is_exactly_the_integer_convolution():
    rng = np.random.default_rng(0)
    layer = fixed.quantize_conv(rng.normal(0, 0.2, (3, 3, 5, 7)), rng.normal(0, 0.1, 7))
    x = _activations(rng, (2, 9, 11, 5))
    got = fixed.conv3x3(x, layer)
    w, b = layer["w"].astype(np.int64), layer["b"].astype(np.int64)
    xi = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    acc = np.zeros((2, 9, 11, 7), np.int64) + b
    for dy in range(3):
        for dx in range(3):
            acc += np.einsum("bhwc,co->bhwo", xi[:, dy : dy + 9, dx : dx + 11], w[dy, dx])
    assert np.array_equal(got, np.clip(acc >> fixed.FW, -fixed.ACT_MAX, fixed.ACT_MAX).astype(np.float64))


def test_conv_agrees_with_the_float_convolution():
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(0, 0.2, (3, 3, 4, 6)), rng.normal(0, 0.1, 6)
    x = _activations(rng, (1, 12, 10, 4))
    got = fixed.conv3x3(x, fixed.quantize_conv(kernel, bias)) / (1 << fixed.FA)
    want = _float_conv(x / (1 << fixed.FA), kernel, bias)
    assert np.abs(got - want).max() < 1e-3  # weight rounding at 2**-14 and one floor at 2**-16


def test_igdn_is_exact_and_agrees_with_the_float_formula():
    rng = np.random.default_rng(2)
    beta, gamma = 1.0 + rng.random(4), 0.1 * rng.random((4, 4))
    layer = fixed.quantize_igdn(beta, gamma)
    x = _activations(rng, (1, 5, 5, 4), scale=1.0)
    got = fixed.igdn(x.copy(), layer)
    xi = x.astype(np.int64)
    norm = (np.abs(xi) @ layer["g"].astype(np.int64) + layer["b"].astype(np.int64)) >> fixed.FA
    assert np.array_equal(got, ((xi * np.minimum(norm, 1 << 26)) >> fixed.FG).astype(np.float64))
    xf = x / (1 << fixed.FA)
    assert np.abs(got / (1 << fixed.FA) - xf * (beta + np.abs(xf) @ gamma)).max() < 1e-3


def test_depth_to_space_channel_order():
    x = np.arange(2 * 3 * 4 * 8, dtype=np.float64).reshape(2, 3, 4, 8)  # C = 2 after the shuffle
    y = fixed.depth_to_space(x)
    assert y.shape == (2, 6, 8, 2)
    for dy in range(2):
        for dx in range(2):
            for c in range(2):
                assert np.array_equal(y[:, dy::2, dx::2, c], x[..., (dy * 2 + dx) * 2 + c])


def test_layers_that_could_not_be_exact_are_refused_at_export():
    with pytest.raises(ValueError, match="2\\*\\*53"):
        fixed.quantize_conv(np.full((3, 3, 64, 1), 1e6), np.zeros(1))
    with pytest.raises(ValueError, match="2\\*\\*53"):
        fixed.quantize_igdn(np.ones(2), np.full((2, 2), 1e9))


# ---------- the plane synthesis equals the tile-window synthesis it replaced ----------

def _old_conv3x3(x, layer):
    """conv3x3 as it was before the plane synthesis (im2col + numpy matmul), kept here as the reference."""
    w, b = layer["w"], layer["b"]
    bsz, h, wd, c = x.shape
    xp = np.zeros((bsz, h + 2, wd + 2, c), np.float64)
    xp[:, 1 : 1 + h, 1 : 1 + wd] = x
    out = np.empty((bsz, h, wd, w.shape[3]), np.float64)
    cols = np.empty((h, wd, 9 * c), np.float64)
    for i in range(bsz):
        for dy in range(3):
            for dx in range(3):
                k = (dy * 3 + dx) * c
                cols[:, :, k : k + c] = xp[i, dy : dy + h, dx : dx + wd]
        np.matmul(cols.reshape(-1, 9 * c), w.reshape(9 * c, -1), out=out[i].reshape(-1, w.shape[3]))
    out += b
    return np.clip(np.floor(out * (1.0 / (1 << fixed.FW))), -fixed.ACT_MAX, fixed.ACT_MAX)


def _old_igdn(x, layer):
    norm = np.minimum(np.floor((np.abs(x) @ layer["g"] + layer["b"]) * (1.0 / (1 << fixed.FA))), float(1 << 26))
    return np.clip(np.floor(x * norm * (1.0 / (1 << fixed.FG))), -fixed.ACT_MAX, fixed.ACT_MAX)


def _old_synthesis(y, inv_gain_fixed, net, mask):
    a = np.clip(np.clip(y, -(1 << 24), 1 << 24).astype(np.float64) * inv_gain_fixed, -fixed.ACT_MAX, fixed.ACT_MAX)
    m = mask.astype(np.float64)[..., None]
    for i in range(4):
        a = fixed.depth_to_space(_old_conv3x3(a, net[f"gs_conv{i}"]))
        m = m.repeat(2, axis=1).repeat(2, axis=2)
        if i < 3:
            a = _old_igdn(a, net[f"gs_igdn{i}"]) * m
    return a[..., 0]


def _old_pixels(model, y_full, grid, q):
    """The exact decoder's pixels before the plane synthesis: tile windows with margins, 4 at a time."""
    from codec import tiles

    nr, nc = grid.tiles_shape
    out = np.empty((nr * grid.tile, nc * grid.tile), np.int64)
    ks = list(range(grid.n_tiles))
    for s in range(0, len(ks), 4):
        part = ks[s : s + 4]
        win, mask = tiles.synthesis_windows(y_full, grid, part), tiles.synthesis_masks(grid, part)
        tiles.place_synthesis(_old_synthesis(win, model.inv_gain[q], model.fx, mask).astype(np.int64), grid, part, out)
    return out[: grid.height, : grid.width]


@pytest.mark.parametrize("shape,tile,q,band,winograd", [((512, 512), 256, 2, 2048, True),
                                                        ((512, 512), 256, 4, 100, True),
                                                        ((512, 512), 256, 2, 2048, False),
                                                        ((200, 300), 128, 0, 40, True), ((72, 90), 128, 3, 2048, True),
                                                        ((33, 17), 64, 1, 1, True), ((33, 17), 64, 1, 1, False)])
def test_plane_synthesis_equals_the_tile_windows(shape, tile, q, band, winograd, monkeypatch):
    """Latents of the size real slices have (incl. the escape range's tails), bands of any size (band = latents per
    call, 1 = one latent row a call), Winograd or the direct 9-tap conv (the fallback for weights whose Winograd
    bound fails): the same integers as the tile-window synthesis, pixel for pixel."""
    from codec import learned, tiles

    model = learned.load_model()
    monkeypatch.setattr(learned, "BAND_LATENTS", band)
    if not winograd:
        monkeypatch.setattr(fixed, "_winograd", lambda conv: None)
    grid = tiles.Grid(shape[0], shape[1], tile)
    hl, wl = grid.latent_shape
    nr, nc = grid.tiles_shape
    rng = np.random.default_rng(sum(shape) + q)
    y_full = np.zeros((nr * grid.t, nc * grid.t, model.inv_gain.shape[1]), np.int64)
    y_full[:hl, :wl] = np.round(rng.laplace(0, 3.0, (hl, wl, y_full.shape[2]))).astype(np.int64)
    y_full[:hl, :wl][rng.random((hl, wl, y_full.shape[2])) < 0.01] *= 40
    hs, ws = grid.height, grid.width
    got = model.synthesise(y_full[:hl, :wl], q)[:hs, :ws]
    assert np.array_equal(got, _old_pixels(model, y_full, grid, q))


def test_split_rows_covers_every_row_once_and_reraises():
    from codec import blas

    seen = []
    bands = []
    blas.split_rows(lambda r0, r1, band: (seen.extend(range(r0, r1)), bands.append(band)), 37)
    assert sorted(seen) == list(range(37)) and sorted(bands) == list(range(len(bands)))

    def boom(r0, r1, band):
        raise RuntimeError("band failed")

    with pytest.raises(RuntimeError, match="band failed"):
        blas.split_rows(boom, 10)


def test_winograd_bound_of_the_shipped_weights_and_refusal():
    from codec import learned

    model = learned.load_model()
    for i in range(3):
        assert fixed._winograd(dict(model.fx[f"gs_conv{i}"])) is not None  # the shipped layers qualify (2**48.7)
    big = {"w": np.full((3, 3, 64, 2), float(1 << 20)), "b": np.zeros(2)}
    assert fixed._winograd(big) is None  # sums that could pass 2**53: the direct conv
