"""The study's axial T2 series: a stack of thin-pixel, thick slices across the lumbar discs.

Clinical lumbar studies pair the sagittal series with an axial T2 stack (0.5-0.9 mm pixels, 3-5 mm
slices) that shows what sagittal slices only blur: the lateral recesses, the foramina and the canal's
cross-section. The generator images one from the same 1 mm anatomy as the sagittal series:

* slices along the patient's head-foot axis, tilted about the left-right axis by up to
  ``axial_tilt_deg`` (the stack is angled to the lumbar discs, as technologists do), the row
  direction to the patient's left and the column direction posterior (DICOM's usual axial layout);
* the stack covers the discs from L1/L2 to L5/S1, or with ``axial_lower_share`` only L3/L4 to L5/S1
  (the common short protocol), so some graded levels have no axial slices;
* the in-plane field of view is centred on the spine and ``axial_fov_mm`` wide: it holds the
  canal, the foramina, the facets and the vertebral bodies, which is all the grading crop (48 x
  80 mm across) reads; a clinical axial shows the whole abdomen, the generator spares the voxels.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..io.volume import LPS_TO_RAS, Volume
from .acquisition import Acquisition
from .anatomy import SpineLayout
from .curve import SpineCurve

FULL_STACK = ("L1/L2", "L5/S1")
LOWER_STACK = ("L3/L4", "L5/S1")


def _tilt(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])


def plan_axial(rng: np.random.Generator, layout: SpineLayout, curve: SpineCurve, config) -> Optional[Acquisition]:
    """Place an axial stack over the lumbar discs; None when the spine has neither end disc."""
    first, last = LOWER_STACK if rng.random() < config.axial_lower_share else FULL_STACK
    top, bottom = layout.disc(first), layout.disc(last)
    if top is None or bottom is None:  # transitional anatomy renames the discs: use the lowest five
        discs = sorted(layout.discs, key=lambda d: d.s_mid)[:5]
        if len(discs) < 2:
            return None
        bottom, top = discs[0], discs[-1]
    margin = rng.uniform(6.0, 14.0, 2)
    s_hi, s_lo = top.s_mid + margin[0], bottom.s_mid - margin[1]
    off = 0.5 * (layout.vertebra(top.upper).offset + layout.vertebra(bottom.lower).offset)
    ends = curve.to_ras(np.zeros(2), np.full(2, off), np.array([s_hi, s_lo]))
    centre = 0.5 * (ends[0] + ends[1])
    height = float(np.linalg.norm(ends[0] - ends[1]))
    pix = rng.uniform(*config.axial_pixel_mm)
    thick = rng.uniform(*config.axial_thickness_mm)
    gap = thick * rng.uniform(*config.slice_gap_share)
    fov_x, fov_y = rng.uniform(*config.axial_fov_mm, 2)
    # the spine's canal sits behind the disc line: shift the field back so the facets and the back
    # muscles are in it as well as the vertebral bodies
    centre = centre + np.array([rng.uniform(-3, 3), -rng.uniform(5.0, 15.0), 0.0])
    # tilt towards the lumbar discs' mean inclination, plus technologist's scatter
    tangent = curve.tangent_ras(0.5 * (s_hi + s_lo))
    tangent = tangent if tangent[2] >= 0 else -tangent
    # the tilt turns the slice normal (LPS z) to RAS (0, sin t, cos t): t = the tangent's lean
    lean = float(np.rad2deg(np.arctan2(tangent[1], tangent[2])))
    tilt = float(np.clip(lean + rng.normal(0, 3), -config.axial_tilt_deg, config.axial_tilt_deg))
    # LPS columns: row direction to patient left, column direction posterior, slices superior
    direction = _tilt(tilt) @ np.eye(3)
    shape = np.array([int(round(fov_x / pix)), int(round(fov_y / pix)), max(3, int(np.ceil(height / (thick + gap))) + 1)])
    spacing = np.array([pix, pix, thick + gap])
    centre_lps = LPS_TO_RAS @ centre
    origin = centre_lps - direction @ (spacing * (shape - 1) / 2)
    geom = Volume(np.zeros((1, 1, 1), np.float32), tuple(spacing), tuple(origin), direction)
    geom.array = np.zeros(tuple(shape), np.float32)  # placeholder; replaced by the image
    return Acquisition(geom, float(thick), float(gap), (float(fov_x), float(fov_y)))
