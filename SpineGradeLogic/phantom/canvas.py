"""`Canvas`: the 1 mm anatomy map in the straightened spine frame, and box-wise painting on it."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np

from .tissues import TISSUE_MASK, pack


class Canvas:
    """An int16 array ``P[u, n, s]`` holding ``label * 32 + tissue`` on a 1 mm grid.

    Voxel ``(i, j, k)`` has its centre at ``(u0 + i, n0 + j, s0 + k)`` mm. Painting happens in
    boxes so that every structure costs only the voxels near it.
    """

    def __init__(self, u_range: Tuple[float, float], n_range: Tuple[float, float], s_range: Tuple[float, float]):
        self.u0, self.n0, self.s0 = (float(np.floor(r[0])) for r in (u_range, n_range, s_range))
        shape = tuple(int(np.ceil(r[1]) - np.floor(r[0])) + 1 for r in (u_range, n_range, s_range))
        self.P = np.zeros(shape, np.int16)

    @property
    def shape(self):
        return self.P.shape

    def axis(self, which: str) -> np.ndarray:
        i = "uns".index(which)
        return (getattr(self, f"{which}0") + np.arange(self.P.shape[i])).astype(np.float32)

    def box(self, u: Tuple[float, float], n: Tuple[float, float], s: Tuple[float, float]):
        """``(view, U, N, S)`` for the voxels inside the box (open coordinate grids), or None."""
        lo, hi = [], []
        for (a, b), o, size in zip((u, n, s), (self.u0, self.n0, self.s0), self.P.shape):
            i0 = max(0, int(np.floor(min(a, b) - o)))
            i1 = min(size, int(np.ceil(max(a, b) - o)) + 1)
            if i1 <= i0:
                return None
            lo.append(i0)
            hi.append(i1)
        view = self.P[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        U = (self.u0 + np.arange(lo[0], hi[0], dtype=np.float32))[:, None, None]
        N = (self.n0 + np.arange(lo[1], hi[1], dtype=np.float32))[None, :, None]
        S = (self.s0 + np.arange(lo[2], hi[2], dtype=np.float32))[None, None, :]
        return view, U, N, S

    @staticmethod
    def paint(view: np.ndarray, mask: np.ndarray, label: int, tissue: int,
              only: Optional[Iterable[int]] = None) -> None:
        """Set ``mask`` voxels of ``view``; with ``only``, just those whose tissue is in it."""
        mask = np.broadcast_to(mask, view.shape)
        if only is not None:
            mask = mask & np.isin(view & TISSUE_MASK, list(only))
        view[mask] = pack(label, tissue)
