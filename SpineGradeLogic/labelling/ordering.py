"""Order instances along the spine by projecting them onto its principal curve.

Sorting by an array axis breaks on oblique, coronal or strongly curved acquisitions; a principal
curve (start on the first principal axis, then alternately fit a smoothing spline and re-project)
follows lordosis and kyphosis. Superior is decided in RAS (the patient frame), never by the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import make_smoothing_spline

OUTLIER_MM = 25.0  # an instance this far off the curve is not part of the spine (a kidney, bowel)


@dataclass
class SpineOrder:
    """Result of :func:`order_along_spine`.

    Attributes:
        order: indices into the input points, superior first.
        arc_mm: arc length along the curve of each ordered point, from the most superior (0).
        residual_mm: distance of each ordered point from the fitted curve.
        outliers: indices into the input points that lie off the curve (dropped from ``order``).
    """

    order: np.ndarray
    arc_mm: np.ndarray
    residual_mm: np.ndarray
    outliers: np.ndarray


def _fit_and_project(points: np.ndarray, t: np.ndarray, lam: float | None, n_samples: int = 400):
    """Fit x(t), y(t), z(t) as smoothing splines, then project every point onto the curve."""
    o = np.argsort(t)
    ts, ps = t[o], points[o]
    # splines need strictly increasing abscissae
    ts = ts + np.arange(len(ts)) * 1e-6
    if len(ts) >= 5:
        splines = [make_smoothing_spline(ts, ps[:, d], lam=lam) for d in range(3)]
        grid = np.linspace(ts[0], ts[-1], n_samples)
        curve = np.stack([s(grid) for s in splines], axis=1)
    else:  # too few points for a spline: the polyline through them
        grid = np.linspace(ts[0], ts[-1], n_samples)
        curve = np.stack([np.interp(grid, ts, ps[:, d]) for d in range(3)], axis=1)
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    d = np.linalg.norm(points[:, None, :] - curve[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    return arc[nearest], d[np.arange(len(points)), nearest]


def _principal_curve(pts: np.ndarray, iterations: int):
    centred = pts - pts.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    t = centred @ axis
    res = np.zeros(len(pts))
    for _ in range(iterations):
        t, res = _fit_and_project(pts, t, lam=None)
    return t, res


def _off_chord(ordered: np.ndarray) -> np.ndarray:
    """Distance of each point from the chord of its two neighbours (ends: the line of the next two).

    A leave-one-out test: a spline through all points would bend to meet an outlier.
    """
    n = len(ordered)
    out = np.zeros(n)
    if n < 3:
        return out
    for i in range(n):
        a, b = (i - 1, i + 1) if 0 < i < n - 1 else ((1, 2) if i == 0 else (n - 3, n - 2))
        pa, pb = ordered[a], ordered[b]
        u = pb - pa
        L = np.linalg.norm(u)
        if L == 0:
            continue
        u = u / L
        v = ordered[i] - pa
        out[i] = np.linalg.norm(v - (v @ u) * u)
    return out


def order_along_spine(
    points_ras: np.ndarray, iterations: int = 3, outlier_mm: float = OUTLIER_MM, protect=()
) -> SpineOrder:
    """Order points (vertebral-body centroids, RAS mm) superior to inferior along the spine.

    Args:
        points_ras: (N, 3) centroids.
        iterations: spline-fit / re-projection rounds of the principal curve.
        outlier_mm: a point farther than this from the chord of its neighbours is dropped (twice
            this at the ends, where the chord is extrapolated).
        protect: indices never dropped (the sacrum: its centroid sits well off the lumbar line).
    """
    pts = np.asarray(points_ras, float).reshape(-1, 3)
    n = len(pts)
    if n == 0:
        return SpineOrder(np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0, int))
    if n == 1:
        return SpineOrder(np.zeros(1, int), np.zeros(1), np.zeros(1), np.zeros(0, int))
    keep = np.arange(n)
    for _ in range(4):  # order, drop the worst clear outlier (it skews its neighbours' chords), repeat
        t, res = _principal_curve(pts[keep], iterations)
        ranked = np.argsort(t)
        off = _off_chord(pts[keep][ranked])
        limit = np.full(len(off), outlier_mm)
        limit[[0, -1]] *= 2
        excess = np.where(np.isin(keep[ranked], list(protect)), 0.0, off / limit)
        worst = int(np.argmax(excess)) if len(excess) else 0
        if len(keep) <= 3 or excess[worst] <= 1.0:
            break
        keep = np.delete(keep, ranked[worst])
    else:  # the last pass dropped a point: t and res must describe the points that are kept
        t, res = _principal_curve(pts[keep], iterations)
    o = np.argsort(t, kind="stable")
    ordered = keep[o]
    # superior first: the end with the larger RAS S coordinate leads
    if pts[ordered[0], 2] < pts[ordered[-1], 2]:
        o = o[::-1]
        ordered = ordered[::-1]
        t = t.max() - t
    arc = t[o] - t[o].min()
    outliers = np.setdiff1d(np.arange(n), keep)
    return SpineOrder(ordered, arc, res[o], outliers)
