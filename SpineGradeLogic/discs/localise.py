"""Disc levels between named vertebrae: centre, normal, frame and a disc-aligned box.

A disc sits between the inferior endplate of the vertebra above and the superior endplate of the
one below. Each endplate is estimated as the centroid of a thin slab of its body's voxels at the
body's far end along the local curve normal, and the disc centre is the midpoint of the two
endplate centres: this stays right for the sacrum, whose centroid lies deep and far anterior.
A disc mask, where given, refines the centre to the centroid of the disc voxels between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..io.volume import Volume
from ..names import disc_level, next_vertebra
from ..results.model import Box, Disc
from .curve import SpineCurve

SLAB_MM = 4.0  # endplate slab thickness along the normal
MIN_DISC_HALF_HEIGHT_MM = 2.0
MARGIN_MM = 2.0  # added around the disc in its box


@dataclass
class DiscLocation:
    """One disc level placed in RAS.

    Attributes:
        level: e.g. ``"L4/L5"``.
        center_mm: RAS centre.
        frame: 3x3, columns (left, posterior, superior) unit vectors in RAS; column 2 is the normal.
        half_size_mm: half extents of the disc-aligned box along the frame's columns.
        refined_by_mask: whether a disc mask placed the centre.
    """

    level: str
    center_mm: np.ndarray
    frame: np.ndarray
    half_size_mm: np.ndarray
    refined_by_mask: bool = False
    extra: Dict[str, float] = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        return self.frame[:, 2]

    @property
    def upper(self) -> str:
        return self.level.split("/")[0]

    @property
    def lower(self) -> str:
        return self.level.split("/")[1]

    def corners_mm(self) -> np.ndarray:
        """The eight corners of the disc-aligned box (RAS)."""
        signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
        return self.center_mm + (signs * self.half_size_mm) @ self.frame.T

    @property
    def bbox_mm(self) -> Box:
        """Axis-aligned RAS box of the disc-aligned box's corners."""
        return Box.around(self.corners_mm())

    def to_disc(self) -> Disc:
        """The result entry (grades are added by the grading stage)."""
        return Disc(self.level, tuple(self.center_mm), normal=tuple(self.normal), bbox_mm=self.bbox_mm)


def _slab(points: np.ndarray, normal: np.ndarray, top: bool) -> np.ndarray:
    """Voxels of a body within ``SLAB_MM`` of its superior (top) or inferior end along ``normal``."""
    h = points @ normal
    edge = np.percentile(h, 98 if top else 2)  # percentiles: a stray voxel does not move the endplate
    sel = h >= edge - SLAB_MM if top else h <= edge + SLAB_MM
    return points[sel]


def _perpendicular(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``n`` and to each other."""
    seed = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    a = seed - (seed @ n) * n
    a /= np.linalg.norm(a)
    return a, np.cross(n, a)


def _half_extent(points: np.ndarray, axis: np.ndarray) -> float:
    h = points @ axis
    lo, hi = np.percentile(h, [2, 98])
    return float(hi - lo) / 2


def locate_disc(
    upper_points: np.ndarray,
    lower_points: np.ndarray,
    curve: SpineCurve,
    level: str,
    disc_points: Optional[np.ndarray] = None,
) -> DiscLocation:
    """Place one disc between two bodies given their voxel centres (RAS mm).

    Args:
        upper_points, lower_points: body voxels of the vertebra above and below.
        curve: the spine curve (normal and frame come from it).
        level: the level's name.
        disc_points: voxels of this disc from a disc mask, if any.
    """
    # first guess: midway between the centroids along the curve, normal there
    u = 0.5 * (curve.project(upper_points.mean(0)) + curve.project(lower_points.mean(0)))
    n = curve.tangent(u)
    lower_end = _slab(upper_points, n, top=False)  # inferior endplate of the upper body
    a = lower_end.mean(0)
    # superior endplate of the lower body, looked for right below the upper one: a tilted sacrum's
    # highest voxels (the promontory) would otherwise pull the centre forward
    r = 0.5 * min(_half_extent(lower_end, v) for v in _perpendicular(n))
    v = lower_points - a
    radial = np.linalg.norm(v - np.outer(v @ n, n), axis=1)
    below = lower_points[radial <= r] if (radial <= r).sum() >= 10 else lower_points
    upper_end = _slab(below, n, top=True)
    b = upper_end.mean(0)
    centre = 0.5 * (a + b)
    refined = False
    if disc_points is not None and len(disc_points) >= 10:
        centre = disc_points.mean(0)
        refined = True
    u = curve.project(centre)
    frame = curve.frame(u, at=centre)
    n = frame[:, 2]
    if refined:
        half_h = _half_extent(disc_points, n)
    else:  # the gap between the endplates
        gap = (a - b) @ n
        half_h = max(gap / 2, MIN_DISC_HALF_HEIGHT_MM)
    plates = disc_points if refined else np.concatenate([lower_end, upper_end])
    half = np.array([_half_extent(plates, frame[:, 0]), _half_extent(plates, frame[:, 1]), half_h]) + MARGIN_MM
    return DiscLocation(level, centre, frame, half, refined, {"endplate_gap_mm": float((a - b) @ n)})


def curve_points(names: Sequence[str], body_points: Sequence[np.ndarray]) -> np.ndarray:
    """Points the spine curve goes through: body centroids, but the sacrum's superior endplate.

    The sacrum's centroid lies deep and anterior-inferior; a curve through it would bend the
    L5/S1 normal forwards. Its endplate continues the lumbar column.
    """
    pts = [p.mean(0) for p in body_points]
    for i, name in enumerate(names):
        if name == "S1" and i > 0:
            up = pts[i - 1] - pts[i]
            up /= np.linalg.norm(up)
            pts[i] = _slab(body_points[i], up, top=True).mean(0)
    return np.array(pts)


def adjacent_pairs(names: Sequence[str]) -> List[tuple[int, int]]:
    """Indices (i, i+1) of neighbouring names that are anatomically adjacent (no vertebra missing) and
    have a disc between them (every pair but C1-C2: the atlas pivots on the dens, with no disc)."""
    has_t13, has_l6 = "T13" in names, "L6" in names
    return [
        (i, i + 1)
        for i in range(len(names) - 1)
        if next_vertebra(names[i], has_t13=has_t13, has_l6=has_l6) == names[i + 1] and names[i] != "C1"
    ]


def locate_discs(
    names: Sequence[str],
    body_points: Sequence[np.ndarray],
    curve: Optional[SpineCurve] = None,
    disc_labels: Optional[Volume] = None,
    canal_ras: Optional[np.ndarray] = None,
) -> tuple[List[DiscLocation], List[str]]:
    """Every disc between adjacent named vertebrae, superior first, and warnings.

    Args:
        names: vertebra names, superior first (S1 = the sacrum).
        body_points: per vertebra, its body voxels in RAS mm (``SpineInstance.points_ras()``).
        curve: a spine curve; fitted through the body centroids (and ``canal_ras``) when None.
        disc_labels: a label volume with discs as 100 + the value of the vertebra above (the network's
            disc mask split by level, or ground truth) to refine the centres; other values are ignored.
        canal_ras: canal centreline points, superior first, for the disc frames' posterior axis.
    """
    from ..names import disc_label  # local: keeps the module's import list short

    warnings: List[str] = []
    if len(names) < 2:
        return [], ["fewer than two named vertebrae: no disc level was placed"]
    if curve is None:
        curve = SpineCurve.fit(curve_points(names, body_points), canal_ras=canal_ras)
    out = []
    pairs = adjacent_pairs(names)
    for i in range(len(names) - 1):
        if (i, i + 1) not in pairs:
            warnings.append(f"no disc placed between {names[i]} and {names[i + 1]}: they are not adjacent")
    for i, j in pairs:
        disc_pts = None
        if disc_labels is not None:
            ijk = np.argwhere(np.asarray(disc_labels.array) == disc_label(names[i]))
            disc_pts = disc_labels.index_to_ras(ijk) if len(ijk) else None
        out.append(locate_disc(body_points[i], body_points[j], curve, disc_level(names[i], names[j]), disc_pts))
    return out, warnings


def discs_for_labelling(labelling, disc_labels: Optional[Volume] = None, canal_ras: Optional[np.ndarray] = None):
    """:func:`locate_discs` for a :class:`~SpineGradeLogic.labelling.Labelling` (names and body voxels)."""
    return locate_discs(labelling.names, [i.points_ras() for i in labelling.instances], None, disc_labels, canal_ras)
