"""The spine's curve: bends the straightened frame (u, n, s) into patient RAS millimetres.

The curve lies in the sagittal plane, given by its tangent angle ``phi(s)`` (0 = straight up,
positive = heading anterior while going up) built from lordosis, kyphosis and the sacral slope,
plus a lateral scoliotic shift ``g(s)``. A point is ``C(s) + n N(s) + (u + g(s)) e_R``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

from .anatomy import SpineLayout

STEP = 0.5  # mm between curve samples


@dataclass
class SpineCurve:
    """Samples of the curve every ``STEP`` mm of ``s`` (RAS y/z), with tangent angle and lateral shift."""

    s: np.ndarray
    y: np.ndarray
    z: np.ndarray
    phi: np.ndarray
    g: np.ndarray  # lateral (RAS x) shift of the spine axis
    x0: float = 0.0

    def _at(self, arr: np.ndarray, s) -> np.ndarray:
        return np.interp(s, self.s, arr)

    def to_ras(self, u, n, s) -> np.ndarray:
        """Straightened coordinates (broadcastable arrays) to RAS points (..., 3)."""
        u, n, s = np.broadcast_arrays(np.asarray(u, float), np.asarray(n, float), np.asarray(s, float))
        phi = self._at(self.phi, s)
        y = self._at(self.y, s) + n * np.cos(phi)
        z = self._at(self.z, s) - n * np.sin(phi)
        x = u + self._at(self.g, s) + self.x0
        return np.stack([x, y, z], axis=-1)

    def tangent_ras(self, s: float) -> np.ndarray:
        """Unit vector along the spine at ``s``, pointing superior."""
        phi = float(self._at(self.phi, s))
        dg = float(np.gradient(self.g, self.s)[int(np.clip(round(s / STEP), 0, len(self.s) - 1))])
        t = np.array([dg, np.sin(phi), np.cos(phi)])
        return t / np.linalg.norm(t)

    def straighten_plane(self, y: np.ndarray, z: np.ndarray):
        """RAS (y, z) grid points to (n, s, g) by the nearest curve sample (2-D arrays)."""
        tree = cKDTree(np.stack([self.y, self.z], 1))
        pts = np.stack([y.ravel(), z.ravel()], 1)
        _, i = tree.query(pts, workers=1)
        dy, dz = pts[:, 0] - self.y[i], pts[:, 1] - self.z[i]
        phi = self.phi[i]
        s = self.s[i] + dy * np.sin(phi) + dz * np.cos(phi)
        n = dy * np.cos(phi) - dz * np.sin(phi)
        g = np.interp(s, self.s, self.g)
        return n.reshape(y.shape), s.reshape(y.shape), g.reshape(y.shape)


def build_curve(rng: np.random.Generator, layout: SpineLayout, config) -> SpineCurve:
    """Tangent angles from the sacral slope, lumbar lordosis, thoracic kyphosis and cervical lordosis."""
    s = np.arange(0.0, layout.length + STEP, STEP)
    by = {v.name: v for v in layout.vertebrae}
    deg = np.pi / 180
    ss = rng.uniform(*config.sacral_slope_deg) * deg
    ll = rng.uniform(*config.lordosis_deg) * deg
    tk = rng.uniform(*config.kyphosis_deg) * deg
    cl = rng.uniform(*config.cervical_lordosis_deg) * deg
    s1_top = by["S1"].s_top
    lum = [v for v in layout.vertebrae if v.name.startswith("L")]
    lumbar_top = max(v.s_top for v in lum)
    t12 = by.get("T13", by["T12"])
    t1, c2 = by["T1"], by["C2"]
    # curvature density: lordosis weighted to the lower lumbar spine, kyphosis even, cervical even
    kappa = np.zeros_like(s)
    low = (s >= s1_top - 10) & (s < lumbar_top)
    w = np.exp(-(s - s1_top) / 200.0) * low  # lower levels bend most, but no tighter than the back is deep
    kappa -= ll * w / max(w.sum() * STEP, 1e-6)
    thor = (s >= t12.s_mid) & (s < t1.s_top)
    kappa += tk * thor / max(thor.sum() * STEP, 1e-6)
    cerv = (s >= t1.s_top) & (s < c2.s_top)
    kappa -= cl * cerv / max(cerv.sum() * STEP, 1e-6)
    sac = s < s1_top - 10
    kappa += (ss - 5 * deg) * sac / max(sac.sum() * STEP, 1e-6)  # sacral kyphosis
    kappa = gaussian_filter1d(kappa, 25.0 / STEP)  # gentle bends keep the frame one-to-one far from the axis
    phi = np.cumsum(kappa) * STEP
    phi += ss - np.interp(s1_top, s, phi)  # the S1 endplate tilts by the sacral slope
    # sagittal balance: the pelvis tilts so that C7 stands over the back of the sacral plateau
    y = np.cumsum(np.sin(phi)) * STEP
    z = np.cumsum(np.cos(phi)) * STEP
    c7 = by["C7"].s_mid
    dy = np.interp(c7, s, y) - np.interp(s1_top, s, y) - rng.uniform(-40, 10)
    dz = np.interp(c7, s, z) - np.interp(s1_top, s, z)
    phi -= np.arctan2(dy, dz) * 0.85
    y = np.cumsum(np.sin(phi)) * STEP
    z = np.cumsum(np.cos(phi)) * STEP
    g = np.zeros_like(s)
    if rng.random() < config.scoliosis_share:
        amp = rng.uniform(*config.scoliosis_mm) * rng.choice([-1, 1])
        centre = rng.uniform(by["L3"].s_mid, by["T8"].s_mid)
        width = rng.uniform(80, 160)
        g = amp * np.exp(-0.5 * ((s - centre) / width) ** 2)
    return SpineCurve(s, y, z, phi, g)
