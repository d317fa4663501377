"""Tiling geometry: a slice of any size is cut into fixed tiles in latent space.

A tile of T x T pixels owns t = T/16 latent rows/columns. Every tile's latents are entropy-coded on their own
(codec/entropy.py), so any tile can be decoded without the others' bit streams being touched beyond their chunk.
There are no seams because neither transform sees a tile border:
  - the encoder's analysis runs on a pixel window with a margin of ENC_MARGIN pixels around the tile
    (zeros beyond the slice) and keeps only the tile's latents;
  - the decoder's synthesis runs on the tile's latents plus a ring of DEC_MARGIN latents of the neighbouring
    tiles and keeps only the tile's pixels; beyond the slice its activations are zeroed after every stage
    (synthesis_masks), as the training's zero padding showed the network at image borders.
Both margins cover the transforms' receptive fields, so the result equals a whole-slice transform while memory
stays bounded by the tile batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIDE = 16  # pixels per latent
ENC_MARGIN = 32  # pixels (2 latents) of context for the analysis transform
DEC_MARGIN = 2  # latents of context for the synthesis transform
DEFAULT_TILE = 256


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    tile: int  # pixels, a multiple of 64 (so hyper-latents align)

    def __post_init__(self):
        if self.tile % 64 or self.tile <= 0:
            raise ValueError(f"tile size must be a positive multiple of 64, got {self.tile}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"empty slice {self.height}x{self.width}")

    @property
    def t(self) -> int:
        return self.tile // STRIDE

    @property
    def latent_shape(self) -> tuple[int, int]:
        return -(-self.height // STRIDE), -(-self.width // STRIDE)

    @property
    def tiles_shape(self) -> tuple[int, int]:
        hl, wl = self.latent_shape
        return -(-hl // self.t), -(-wl // self.t)

    @property
    def n_tiles(self) -> int:
        a, b = self.tiles_shape
        return a * b

    def tile_index(self, k: int) -> tuple[int, int]:
        return divmod(k, self.tiles_shape[1])

    def tile_latent_box(self, k: int) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) of tile k's own latents inside the slice's latent grid."""
        i, j = self.tile_index(k)
        hl, wl = self.latent_shape
        return i * self.t, min((i + 1) * self.t, hl), j * self.t, min((j + 1) * self.t, wl)


def analysis_windows(x: np.ndarray, grid: Grid) -> np.ndarray:
    """(n_tiles, T + 2m, T + 2m, 1) float32 pixel windows, the slice edge-replicated beyond its border."""
    m, T = ENC_MARGIN, grid.tile
    nr, nc = grid.tiles_shape
    # zeros beyond the slice, as the convolutions' zero padding showed the network at image borders in training
    padded = np.pad(x, ((m, nr * T + m - x.shape[0]), (m, nc * T + m - x.shape[1])))
    out = np.empty((grid.n_tiles, T + 2 * m, T + 2 * m, 1), np.float32)
    for k in range(grid.n_tiles):
        i, j = grid.tile_index(k)
        out[k, :, :, 0] = padded[i * T : i * T + T + 2 * m, j * T : j * T + T + 2 * m]
    return out


def crop_analysis(latents: np.ndarray, grid: Grid) -> np.ndarray:
    """Analysis output (n_tiles, t + 2*m/16, ...) -> the full latent map (nr*t, nc*t, C), zero beyond the slice."""
    mm = ENC_MARGIN // STRIDE
    t = grid.t
    nr, nc = grid.tiles_shape
    full = np.zeros((nr * t, nc * t, latents.shape[-1]), latents.dtype)
    for k in range(grid.n_tiles):
        i, j = grid.tile_index(k)
        full[i * t : (i + 1) * t, j * t : (j + 1) * t] = latents[k, mm : mm + t, mm : mm + t]
    hl, wl = grid.latent_shape
    full[hl:] = 0
    full[:, wl:] = 0
    return full


def tile_latents(full: np.ndarray, grid: Grid, k: int) -> np.ndarray:
    """Tile k's t x t block of the (tile-grid sized) latent map."""
    i, j = grid.tile_index(k)
    t = grid.t
    return full[i * t : (i + 1) * t, j * t : (j + 1) * t]


def synthesis_windows(full: np.ndarray, grid: Grid, tiles: list[int]) -> np.ndarray:
    """(len(tiles), t + 2d, t + 2d, C) latent windows with DEC_MARGIN latents of context (zeros outside)."""
    d, t = DEC_MARGIN, grid.t
    padded = np.pad(full, ((d, d), (d, d), (0, 0)))
    out = np.empty((len(tiles), t + 2 * d, t + 2 * d, full.shape[-1]), full.dtype)
    for n, k in enumerate(tiles):
        i, j = grid.tile_index(k)
        out[n] = padded[i * t : i * t + t + 2 * d, j * t : j * t + t + 2 * d]
    return out


def synthesis_masks(grid: Grid, tiles: list[int]) -> np.ndarray:
    """(len(tiles), t + 2d, t + 2d) 0/1: which latents of each synthesis window lie inside the slice."""
    d, t = DEC_MARGIN, grid.t
    hl, wl = grid.latent_shape
    nr, nc = grid.tiles_shape
    inside = np.zeros((nr * t + 2 * d, nc * t + 2 * d), np.float32)
    inside[d : d + hl, d : d + wl] = 1.0
    out = np.empty((len(tiles), t + 2 * d, t + 2 * d), np.float32)
    for n, k in enumerate(tiles):
        i, j = grid.tile_index(k)
        out[n] = inside[i * t : i * t + t + 2 * d, j * t : j * t + t + 2 * d]
    return out


def place_synthesis(pixels: np.ndarray, grid: Grid, tiles: list[int], out: np.ndarray) -> None:
    """Crop each (T + 2*16d)^2 synthesis output to its tile and write it into out (nr*T, nc*T)."""
    p, T = DEC_MARGIN * STRIDE, grid.tile
    for n, k in enumerate(tiles):
        i, j = grid.tile_index(k)
        out[i * T : (i + 1) * T, j * T : (j + 1) * T] = pixels[n, p : p + T, p : p + T]
