"""codec/tiles.py: the tile grid of a slice, and windows cut from it that put back together to the slice."""
from __future__ import annotations

import numpy as np
import pytest

from codec import tiles


def test_grid_geometry_of_an_odd_sized_slice():
    g = tiles.Grid(600, 520, 256)
    assert g.t == 16 and g.latent_shape == (38, 33) and g.tiles_shape == (3, 3) and g.n_tiles == 9
    assert g.tile_index(5) == (1, 2)
    assert g.tile_latent_box(0) == (0, 16, 0, 16)
    assert g.tile_latent_box(8) == (32, 38, 32, 33)  # the last tile is cut at the slice's latent border


@pytest.mark.parametrize("tile", [0, 100, -64])
def test_tile_size_must_be_a_positive_multiple_of_64(tile):
    with pytest.raises(ValueError):
        tiles.Grid(100, 100, tile)


def test_analysis_windows_hold_each_tile_with_its_margin_and_zeros_beyond_the_slice():
    rng = np.random.default_rng(0)
    x = rng.random((150, 200)).astype(np.float32)
    g = tiles.Grid(150, 200, 128)
    win = tiles.analysis_windows(x, g)
    m, T = tiles.ENC_MARGIN, g.tile
    assert win.shape == (g.n_tiles, T + 2 * m, T + 2 * m, 1)
    padded = np.zeros((m + g.tiles_shape[0] * T + m, m + g.tiles_shape[1] * T + m), np.float32)
    padded[m : m + 150, m : m + 200] = x
    for k in range(g.n_tiles):
        i, j = g.tile_index(k)
        assert np.array_equal(win[k, :, :, 0], padded[i * T : i * T + T + 2 * m, j * T : j * T + T + 2 * m])


def test_crop_analysis_keeps_each_tiles_own_latents_and_zeroes_beyond_the_slice():
    g = tiles.Grid(150, 200, 128)  # latents 10 x 13 on a 2 x 2 grid of 8-latent tiles
    mm, t = tiles.ENC_MARGIN // tiles.STRIDE, g.t
    lat = np.zeros((g.n_tiles, t + 2 * mm, t + 2 * mm, 1))
    for k in range(g.n_tiles):
        lat[k, mm : mm + t, mm : mm + t] = k + 1
    full = tiles.crop_analysis(lat, g)
    assert full.shape == (2 * t, 2 * t, 1)
    hl, wl = g.latent_shape
    assert full[0, 0, 0] == 1 and full[0, t, 0] == 2 and full[t, 0, 0] == 3 and full[t, t, 0] == 4
    assert not full[hl:].any() and not full[:, wl:].any()


def test_synthesis_windows_masks_and_placement_rebuild_the_slice():
    g = tiles.Grid(150, 200, 128)
    d, t, T, p = tiles.DEC_MARGIN, g.t, g.tile, tiles.DEC_MARGIN * tiles.STRIDE
    rng = np.random.default_rng(1)
    full = rng.integers(-9, 9, (2 * t, 2 * t, 3))
    ks = list(range(g.n_tiles))
    win = tiles.synthesis_windows(full, g, ks)
    masks = tiles.synthesis_masks(g, ks)
    assert win.shape == (4, t + 2 * d, t + 2 * d, 3) and masks.shape == (4, t + 2 * d, t + 2 * d)
    for k in ks:
        assert np.array_equal(win[k, d : d + t, d : d + t], tiles.tile_latents(full, g, k))
    assert masks[0, 0, 0] == 0 and masks[0, d, d] == 1  # the ring outside the slice is masked off
    hl, wl = g.latent_shape
    assert masks[3, d + hl - t, d] == 0 and masks[3, d + hl - t - 1, d] == 1  # the slice ends inside tile 3
    image = rng.random((2 * T, 2 * T))
    pixels = np.zeros((4, T + 2 * p, T + 2 * p))
    for k in ks:
        i, j = g.tile_index(k)
        pixels[k, p : p + T, p : p + T] = image[i * T : (i + 1) * T, j * T : (j + 1) * T]
    out = np.full((2 * T, 2 * T), np.nan)
    tiles.place_synthesis(pixels, g, ks, out)
    assert np.array_equal(out, image)
