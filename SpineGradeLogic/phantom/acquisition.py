"""The imaged sagittal series: field of view, slices, pixel size and plane obliquity.

The series geometry follows DICOM's usual sagittal layout in LPS: the ``i`` axis (row direction)
runs anterior to posterior, ``j`` (column direction) superior to inferior, ``k`` (slices) from the
patient's left to right; an oblique series rotates all three a few degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..io.volume import LPS_TO_RAS, Volume
from .anatomy import SpineLayout
from .curve import SpineCurve

#: The vertebrae each field of view must show whole (first, last).
FOV_SPAN = {"lumbar": ("T12", "S1"), "thoracolumbar": ("T8", "S1"), "whole": ("C1", "S1")}
FOVS = tuple(FOV_SPAN)


@dataclass
class Acquisition:
    geometry: Volume  # empty array, the series geometry
    thickness: float
    gap: float
    fov_mm: Tuple[float, float]

    @property
    def shape(self):
        return self.geometry.shape


def _rotation(rng: np.random.Generator, max_deg: float, height: float) -> np.ndarray:
    """Oblique planes: free rotation about the head-foot axis (the slab follows the spine's own
    rotation), small in-plane rotation, and a coronal tilt kept to ~8 mm at the field's ends."""
    tilt = min(max_deg, np.rad2deg(np.arctan(8.0 / max(height / 2, 1.0))))
    a, b, c = np.deg2rad(rng.uniform(-1, 1, 3) * np.array([max_deg, tilt, 0.5 * max_deg]))
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def plan_acquisition(rng: np.random.Generator, layout: SpineLayout, curve: SpineCurve, fov: str, config) -> Acquisition:
    """Place a sagittal series so that the vertebrae of ``fov`` are in it, with protocol-like randomness."""
    first, last = FOV_SPAN[fov]
    top_v = layout.vertebra(first)
    if fov == "lumbar" and layout.transitional == "T13":
        top_v = layout.vertebra("T12")
    bot_v = layout.vertebra(last)
    s_top = top_v.s_top + 4
    s_bot = bot_v.s_top - 0.45 * (bot_v.s_top - bot_v.s_bot)  # the upper sacrum
    pts = curve.to_ras(np.zeros(3), np.array([top_v.offset, bot_v.offset, 0.0]), np.array([s_top, s_bot, 0.5 * (s_top + s_bot)]))
    span = abs(pts[0, 2] - pts[1, 2])
    margin = rng.uniform(*config.fov_margin_mm, size=2)
    fz = span + margin.sum()
    centre_z = 0.5 * (pts[0, 2] + pts[1, 2]) + 0.5 * (margin[0] - margin[1])
    fy = min(fz, rng.uniform(260, 330)) if fov != "whole" else rng.uniform(280, 340)
    # the spine sits in the back half of the field, the back's skin inside it
    s_c = float(np.interp(centre_z, curve.z, curve.s))
    spine_y = float(np.interp(s_c, curve.s, curve.y))
    centre_y = spine_y + rng.uniform(0.02, 0.12) * fy
    centre_x = float(np.interp(s_c, curve.s, curve.g)) + curve.x0 + rng.uniform(-4, 4)
    pix = rng.uniform(*(config.pixel_mm_whole if fov == "whole" else config.pixel_mm))
    thick = rng.uniform(*config.slice_thickness_mm)
    gap = thick * rng.uniform(*config.slice_gap_share)
    n_slices = max(3, int(round(rng.uniform(*config.coverage_mm) / (thick + gap))))
    cols, rows = int(round(fy / pix)), int(round(fz / pix))
    base = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # LPS columns: posterior, inferior, right
    direction = _rotation(rng, config.oblique_deg, fz) @ base
    spacing = np.array([pix, pix, thick + gap])
    shape = np.array([cols, rows, n_slices])
    centre_lps = LPS_TO_RAS @ np.array([centre_x, centre_y, centre_z])
    origin = centre_lps - direction @ (spacing * (shape - 1) / 2)
    geom = Volume(np.zeros((1, 1, 1), np.float32), tuple(spacing), tuple(origin), direction)
    geom.array = np.zeros(tuple(shape), np.float32)  # placeholder; replaced by the image
    return Acquisition(geom, float(thick), float(gap), (float(fy), float(fz)))


def corners_ras(geom: Volume) -> np.ndarray:
    """The eight corner voxel centres, plus half a slice thickness either side, in RAS."""
    sh = np.array(geom.shape) - 1
    c = np.array([[i, j, k] for i in (0, sh[0]) for j in (0, sh[1]) for k in (-0.5, sh[2] + 0.5)], float)
    return geom.index_to_ras(c)
