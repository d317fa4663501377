"""Decode order of the residual layer: a coarse grid, then per level three interleaved phases.

Level s (s = 2**(L-1) … 1) refines the grid of stride 2s to stride s in three phases, each a regular sub-grid
`a[ci::2s, cj::2s]`: B = (s, s) from the 4 diagonal grid points, C1 = (0, s) and then C2 = (s, 0) from axial
neighbours. Every neighbour a phase uses belongs to an earlier phase, so a whole phase is predicted and coded
with vectorised numpy; out-of-image neighbours are replaced per axis by an in-image point of the same parity.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_LEVELS = 6
N_NEIGHBOURS = 20  # decoded neighbours a phase's predictor may use (nearest first)


@dataclass(frozen=True)
class Phase:
    step: int  # 2s: stride of this phase's sub-grid (for the coarse grid: 2**L)
    ci: int  # row offset of the sub-grid
    cj: int  # column offset of the sub-grid
    offsets: tuple[tuple[int, int], ...]  # neighbour offsets in pixels, nearest first ((): coarse grid)

    def rows(self, height: int) -> np.ndarray:
        return np.arange(self.ci, height, self.step)

    def cols(self, width: int) -> np.ndarray:
        return np.arange(self.cj, width, self.step)

    def view(self, array: np.ndarray) -> np.ndarray:
        return array[self.ci :: self.step, self.cj :: self.step]


def n_levels(shape: tuple[int, int]) -> int:
    """Levels such that every level's half-step rows and columns exist in the image."""
    return min(MAX_LEVELS, (min(shape) - 1).bit_length())


def _offsets(cls: tuple[int, int], earlier: set[tuple[int, int]], s: int) -> tuple[tuple[int, int], ...]:
    found = []
    for di in range(-3, 4):
        for dj in range(-3, 4):
            if ((cls[0] + di) % 2, (cls[1] + dj) % 2) in earlier:
                found.append((di * di + dj * dj, di, dj))
    found.sort()
    return tuple((di * s, dj * s) for _, di, dj in found[:N_NEIGHBOURS])


def phases(shape: tuple[int, int]) -> list[Phase]:
    levels = n_levels(shape)
    out = [Phase(2**levels, 0, 0, ())]
    order = [(1, 1), (0, 1), (1, 0)]
    for level in range(levels - 1, -1, -1):
        s = 2**level
        for n, cls in enumerate(order):
            earlier = {(0, 0), *order[:n]}
            out.append(Phase(2 * s, cls[0] * s, cls[1] * s, _offsets(cls, earlier, s)))
    return out


def neighbour_index(idx: np.ndarray, delta: int, size: int, step: int) -> np.ndarray:
    """idx + delta along one axis, folded back into [0, size) keeping the residue modulo `step`."""
    j = idx + delta
    j = np.where(j < 0, -j, j)
    over = j > size - 1
    j = np.where(over, j - step * ((j - (size - 1) + step - 1) // step), j)
    return np.where((j < 0) | (j > size - 1), (idx + delta) % step, j)


@lru_cache(maxsize=4096)
def _axis_index(start: int, delta: int, size: int, step: int) -> np.ndarray:
    idx = neighbour_index(np.arange(start, size, step), delta, size, step)
    idx.setflags(write=False)
    return idx


def gather(array: np.ndarray, phase: Phase, offset: tuple[int, int]) -> np.ndarray:
    """The values of `array` at `offset` from every pixel of `phase` (a sub-grid shaped array)."""
    h, w = array.shape
    ri = _axis_index(phase.ci, offset[0], h, phase.step)
    cj = _axis_index(phase.cj, offset[1], w, phase.step)
    return array.take(ri, axis=0).take(cj, axis=1)  # rows then columns: ~1.8x a 2-D fancy index on a 5 MP slice
