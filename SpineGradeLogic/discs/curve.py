"""A smooth spine curve through the vertebral-body centroids (and the canal, where it is known).

The curve is a parametric smoothing spline (``scipy.interpolate.splprep``) through the named body
centroids, superior first, parameter ``u`` running 0 (top) to 1 (bottom). Its tangent, turned to
point superior, is the disc normal. The canal centreline, where given, fixes which way is posterior
in the disc's frame; without it the patient's left-right axis does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.interpolate import splev, splprep

RIGHT = np.array([1.0, 0.0, 0.0])  # RAS +x


@dataclass
class SpineCurve:
    """Parametric spline through ordered points (superior first), in RAS millimetres."""

    tck: tuple
    points: np.ndarray
    u_points: np.ndarray
    canal: Optional["SpineCurve"] = None

    @classmethod
    def fit(cls, points_ras: np.ndarray, smoothing_mm: float = 1.0, canal_ras: Optional[np.ndarray] = None) -> "SpineCurve":
        """Fit through ordered points (superior first); ``smoothing_mm`` is the allowed RMS residual.

        Args:
            points_ras: (N >= 2, 3) body centroids, superior first.
            smoothing_mm: RMS distance the spline may keep from the points (irregular centroids, wedge
                vertebrae); 0 interpolates.
            canal_ras: optional (M >= 2, 3) canal centreline points, superior first.
        """
        pts = np.asarray(points_ras, float).reshape(-1, 3)
        if len(pts) < 2:
            raise ValueError("a spine curve needs at least two points")
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
        pts = pts[keep]
        k = min(3, len(pts) - 1)
        s = len(pts) * smoothing_mm**2 if len(pts) > k + 1 else 0.0
        tck, u = splprep(pts.T, k=k, s=s)
        canal = cls.fit(canal_ras, smoothing_mm) if canal_ras is not None and len(canal_ras) >= 2 else None
        return cls(tck, pts, np.asarray(u), canal)

    def point(self, u) -> np.ndarray:
        """RAS point(s) at parameter(s) ``u`` (beyond [0, 1] the spline is extrapolated)."""
        return np.stack(splev(np.asarray(u, float), self.tck), axis=-1)

    def tangent(self, u) -> np.ndarray:
        """Unit tangent(s) at ``u``, pointing superior (towards u = 0)."""
        d = -np.stack(splev(np.asarray(u, float), self.tck, der=1), axis=-1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def project(self, p: np.ndarray, n_samples: int = 2000) -> float:
        """Parameter of the curve point nearest to ``p`` (a dense search, then a local refinement)."""
        p = np.asarray(p, float)
        u = np.linspace(-0.1, 1.1, n_samples)
        u0 = u[np.argmin(np.linalg.norm(self.point(u) - p, axis=1))]
        fine = np.linspace(u0 - 1.2 / n_samples, u0 + 1.2 / n_samples, 101)
        return float(fine[np.argmin(np.linalg.norm(self.point(fine) - p, axis=1))])

    def frame(self, u: float, at: Optional[np.ndarray] = None) -> np.ndarray:
        """Orthonormal disc frame at ``u`` as columns (left, posterior, superior) in RAS.

        The same right-handed (L, P, S) axis order as LPS itself, so a crop in this frame looks like an
        ordinary sagittal stack. Posterior comes from the canal curve where known (the canal lies
        behind the bodies), else from the patient's left-right axis.
        """
        n = self.tangent(u)
        post = None
        if self.canal is not None:
            here = self.point(u) if at is None else np.asarray(at, float)
            off = self.canal.point(self.canal.project(here)) - here
            off = off - (off @ n) * n
            if np.linalg.norm(off) > 1.0:
                post = off / np.linalg.norm(off)
        if post is None:
            right = RIGHT - (RIGHT @ n) * n
            if np.linalg.norm(right) < 1e-6:  # a spine along left-right: not anatomy, but stay defined
                right = np.array([0.0, 1.0, 0.0]) - n[1] * n
            right /= np.linalg.norm(right)
            post = np.cross(right, n)
        left = np.cross(post, n)
        return np.stack([left, post, n], axis=1)
