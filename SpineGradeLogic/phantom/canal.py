"""The spinal canal along the spine: bony canal, dural sac, cord, and their healthy sizes.

Shared by the painter (what to draw) and the grader (the healthy reference areas), so the
reference of "remaining canal" is exactly the sac that was drawn before any pathology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import SpineLayout

CANAL_POWER = 3.0  # superellipse exponent: the lumbar canal is boxier than an ellipse


@dataclass
class CanalProfile:
    """Canal geometry sampled at ``s`` (1-D arrays, mm)."""

    s: np.ndarray
    offset: np.ndarray  # anterior shift (listhesis)
    D: np.ndarray  # vertebral body depth
    W: np.ndarray
    cw: np.ndarray  # bony canal width
    cap: np.ndarray  # bony canal depth
    pw: np.ndarray

    @property
    def n_wall(self) -> np.ndarray:
        """Posterior wall of the bodies and discs (front of the canal)."""
        return self.offset - self.D / 2

    @property
    def n_centre(self) -> np.ndarray:
        return self.n_wall - self.cap / 2

    # the dural sac: an ellipse inside the canal, a little anterior, leaving dorsal epidural fat
    @property
    def sac_a(self) -> np.ndarray:
        return 0.40 * self.cw

    @property
    def sac_b(self) -> np.ndarray:
        return 0.36 * self.cap

    @property
    def sac_centre(self) -> np.ndarray:
        return self.n_centre + 0.08 * self.cap

    @property
    def sac_area(self) -> np.ndarray:
        """Healthy dural sac cross-section (mm^2)."""
        return np.pi * self.sac_a * self.sac_b


def canal_profile(layout: SpineLayout, s: np.ndarray) -> CanalProfile:
    s = np.asarray(s, dtype=float)
    return CanalProfile(s, layout.offset_profile(s, canal=True), *(layout.profile(s, k) for k in ("D", "W", "cw", "cap", "pw")))
