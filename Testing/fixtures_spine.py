"""Synthetic spine label maps for the labelling and disc tests (numpy only, fast).

Vertebral bodies are ellipsoids stacked along a curved (lordotic, slightly scoliotic) spine in RAS,
each aligned with the local tangent; discs sit between them; a tilted sacrum closes the lumbar
spine; C2 carries a dens; a canal tube runs behind. The grid is an oblique sagittal acquisition.
Everything is returned with its analytic truth (centres, disc centres, tangents) in RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np

from fixtures_volumes import SAGITTAL_LPS, rotation
from SpineGradeLogic.io.volume import LPS_TO_RAS, Volume
from SpineGradeLogic.names import DISC_OFFSET, SPINAL_CANAL, SPINE_ORDER, VERTEBRA_LABELS

# body height, disc height, AP radius, LR radius (mm), by region
_SIZES = {"C": (14.0, 5.0, 8.0, 10.0), "T": (20.0, 6.0, 12.0, 15.0), "L": (27.0, 10.0, 16.0, 21.0)}


@dataclass
class SyntheticSpine:
    labels: Volume
    centres: Dict[str, np.ndarray]  # analytic body centres (RAS)
    disc_centres: Dict[str, np.ndarray]  # level -> analytic disc centre (RAS)
    disc_normals: Dict[str, np.ndarray]  # level -> unit tangent, superior
    names: List[str] = field(default_factory=list)


def _frame(t: np.ndarray):
    """Orthonormal (lr, ap, t) around tangent t: lr from RAS x, ap = t x lr (anterior)."""
    lr = np.array([1.0, 0, 0]) - t[0] * t
    lr /= np.linalg.norm(lr)
    return lr, np.cross(t, lr), t


def synthetic_spine(
    names: Sequence[str] = ("L1", "L2", "L3", "L4", "L5", "S1"),
    spacing=(1.2, 1.5, 3.0),
    tilt_deg: float = 14.0,
    lordosis_mm: float = 18.0,
    scoliosis_mm: float = 6.0,
    with_discs: bool = True,
    with_canal: bool = False,
    dens: bool = True,
) -> SyntheticSpine:
    """A label map (VerSe values) of the named vertebrae, superior first, on an oblique sagittal grid."""
    names = list(names)
    # walk down the spine: arc position of each body centre and disc centre
    s, pos, disc_pos = 0.0, {}, {}
    for a, b in zip(names, names[1:] + [None]):
        if a == "S1":
            break
        h, d, _, _ = _SIZES[a[0]]
        pos[a] = s + h / 2
        s += h
        if b is not None:
            disc_pos[f"{a}/{b}"] = s + d / 2
            s += d
    length = max(s, 200.0)  # the curvature of a real spine, whatever part is in view

    def curve(u):  # RAS point at arc u (approximately: z is nearly the arc for gentle curves)
        x = scoliosis_mm * np.sin(np.pi * u / length)
        y = lordosis_mm * np.sin(np.pi * u / length)  # anterior bulge: lumbar lordosis
        return np.array([x, y, -u])

    def tangent(u):  # pointing superior
        e = 1e-3
        t = curve(u - e) - curve(u + e)
        return t / np.linalg.norm(t)

    centres, shapes = {}, []
    for n in names:
        if n == "S1":
            top = curve(s) if "S1" in names else None
            t = tangent(s)
            lr, ap, _ = _frame(t)
            # sacrum: its endplate tilted 15 degrees against L5's (the lordotic L5/S1 wedge), 48 mm tall
            tilt = np.radians(15)
            ts = np.cos(tilt) * t - np.sin(tilt) * ap  # its long axis runs posterior-inferior
            c = top - ts * 24.0 + ap * 4.0
            centres[n] = c
            shapes.append((n, c, ts, 24.0, 17.0, 22.0))
            continue
        h, _, rap, rlr = _SIZES[n[0]]
        c = curve(pos[n])
        centres[n] = c
        shapes.append((n, c, tangent(pos[n]), h / 2, rap, rlr))
    discs, normals = {}, {}
    for level, u in disc_pos.items():
        discs[level] = curve(u)
        normals[level] = tangent(u)

    # oblique sagittal grid covering everything
    direction = rotation(1, tilt_deg) @ rotation(2, tilt_deg / 2) @ SAGITTAL_LPS
    dir_ras = LPS_TO_RAS @ direction
    pts = np.array([c for _, c, *_ in shapes])
    centre = pts.mean(0)
    local = (pts - centre) @ dir_ras
    lo, hi = local.min(0) - 30, local.max(0) + 30
    shape = tuple(int(np.ceil((hi[d] - lo[d]) / spacing[d])) + 1 for d in range(3))
    origin_ras = centre + dir_ras @ lo
    vol = Volume(np.zeros(shape, np.uint8), spacing, tuple(LPS_TO_RAS @ origin_ras), direction)
    arr = vol.array

    def paint(value, c, t, hh, rap, rlr, cylinder=False):
        """Set the voxels inside an ellipsoid (only its bounding box of the grid is visited)."""
        r = max(hh, rap, rlr)
        corners = c + r * np.array([[a, b, d] for a in (-1, 1) for b in (-1, 1) for d in (-1, 1)])
        idx = vol.ras_to_index(corners)
        lo = np.clip(np.floor(idx.min(0)).astype(int), 0, np.array(shape) - 1)
        hi = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, np.array(shape))
        ijk = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
        v = vol.index_to_ras(ijk.reshape(-1, 3)) - c
        lr, ap, _ = _frame(t)
        if cylinder:  # vertebral bodies: flat endplates, elliptic cross-section
            m = (np.abs(v @ t) <= hh) & ((v @ ap / rap) ** 2 + (v @ lr / rlr) ** 2 <= 1.0)
        else:
            m = (v @ t / hh) ** 2 + (v @ ap / rap) ** 2 + (v @ lr / rlr) ** 2 <= 1.0
        m = m.reshape(ijk.shape[:3])
        sub = arr[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        sub[m] = value

    if with_canal:
        for u in np.linspace(0, s, int(s / 3) + 2):
            t = tangent(u)
            _, ap, _ = _frame(t)
            rap = _SIZES[names[0][0]][2]
            paint(SPINAL_CANAL, curve(u) - ap * (rap + 10), t, 3.0, 6.0, 7.0)
    if with_discs:
        for (level, c), (_, t) in zip(discs.items(), normals.items()):
            upper = level.split("/")[0]
            h, d, rap, rlr = _SIZES[upper[0]]
            paint(DISC_OFFSET + VERTEBRA_LABELS[upper], c, t, d / 2 + 1.0, rap * 0.95, rlr * 0.95)
    for n, c, t, hh, rap, rlr in shapes:
        paint(VERTEBRA_LABELS[n], c, t, hh, rap, rlr, cylinder=True)
        if n == "C2" and dens:  # the dens: a peg on top of the body, as tall as the body
            paint(VERTEBRA_LABELS[n], c + t * (hh * 1.9), t, hh * 1.1, rap * 0.4, rlr * 0.35)
    return SyntheticSpine(vol, centres, discs, normals, names)


def names_between(first: str, last: str, t13: bool = False, l6: bool = False) -> List[str]:
    order = [n for n in SPINE_ORDER if (n != "T13" or t13) and (n != "L6" or l6)]
    return order[order.index(first) : order.index(last) + 1]


def noisy_evidence(truth: Sequence[str], rng: np.random.Generator, sharpness: float = 2.0, noise: float = 1.0) -> np.ndarray:
    """Simulated network probabilities: peaked on the truth, spilling to neighbours, with noise."""
    k = len(SPINE_ORDER)
    out = np.zeros((len(truth), k))
    for n, name in enumerate(truth):
        i = SPINE_ORDER.index(name)
        logits = -sharpness * np.abs(np.arange(k) - i) + rng.normal(0, noise, k)
        p = np.exp(logits - logits.max())
        out[n] = p / p.sum()
    return out
