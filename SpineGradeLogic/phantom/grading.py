"""Ground-truth grades of every head, measured on the generated anatomy.

Thresholds (also in docs/phantom.md) follow how radiologists grade:

* ``disc_narrowing`` from height loss against this level's healthy height (1 - ratio):
  < 15 % normal (0), 15-40 % mild (1), 40-65 % moderate (2), > 65 % severe (3).
* ``pfirrmann`` from nucleus hydration h (its T2 signal between annulus and CSF) and height:
  h >= 0.9 homogeneous bright = 1; h >= 0.65 bright with a cleft = 2; h >= 0.4 grey = 3;
  h >= 0.15 dark = 4; else 5; at least 3 below 85 % height, at least 4 below 60 %, 5 below 35 %.
* ``disc_bulging``: circumferential bulge >= 2 mm beyond the endplates.
* ``disc_herniation``: focal extension >= 2 mm beyond the posterior disc margin.
* ``spondylolisthesis``: slip of the upper body over the lower >= 3 mm.
* ``upper_endplate_defect`` / ``lower_endplate_defect``: a Schmorl node >= 2 mm deep in the endplate
  above / below the disc.
* ``modic``: the type drawn in the marrow either side (0 none).
* ``central_canal_stenosis``: compromise of the dural sac = 1 - (smallest sac cross-section at the
  level / healthy sac cross-section); ``lateral_recess_stenosis_*``: 1 - free area of the anterolateral
  canal gutter / its healthy area; ``foraminal_stenosis_*``: 1 - free (fat + root) area of the
  foramen in its mid-parasagittal plane / the healthy foramen's. Compromise < 15 % normal (0),
  < 1/3 mild (1), < 2/3 moderate (2), otherwise severe (3).
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..names import HEADS, SPINAL_CANAL, SPINAL_CORD
from ..results.model import Grade
from . import tissues as T
from .anatomy import DiscShape, SpineLayout
from .canal import CANAL_POWER, CanalProfile
from .canvas import Canvas
from .pathology import DiscPathology

NARROWING = (0.15, 0.40, 0.65)  # height loss
STENOSIS = (0.15, 1 / 3, 2 / 3)  # area compromise
PFIRRMANN_HYDRATION = (0.9, 0.65, 0.4, 0.15)
BULGE_MM = HERNIATION_MM = ENDPLATE_MM = 2.0
SLIP_MM = 3.0
FREE = (T.EPIDURAL_FAT, T.NERVE, T.CSF, T.CORD)


def _bin(value: float, cuts) -> int:
    return int(sum(value >= c for c in cuts))


def narrowing_grade(height_ratio: float) -> int:
    return _bin(1.0 - height_ratio, NARROWING)


def pfirrmann_grade(hydration: float, height_ratio: float) -> int:
    g = 1 + sum(hydration < c for c in PFIRRMANN_HYDRATION)
    if height_ratio < 0.85:
        g = max(g, 3)
    if height_ratio < 0.6:
        g = max(g, 4)
    if height_ratio < 0.35:
        g = 5
    return int(g)


def stenosis_grade(compromise: float) -> int:
    return _bin(compromise, STENOSIS)


def _slabs(cv: Canvas, s_lo: float, s_hi: float) -> Tuple[int, int]:
    k0 = int(np.clip(np.ceil(s_lo - cv.s0), 0, cv.shape[2] - 1))
    k1 = int(np.clip(np.floor(s_hi - cv.s0), k0, cv.shape[2] - 1))
    return k0, k1 + 1


def _iu(cv: Canvas, lo: float, hi: float) -> slice:
    return slice(int(np.clip(np.ceil(lo - cv.u0), 0, cv.shape[0])), int(np.clip(np.floor(hi - cv.u0) + 1, 0, cv.shape[0])))


def central_compromise(cv: Canvas, prof: CanalProfile, d: DiscShape) -> float:
    k0, k1 = _slabs(cv, d.s_bot, d.s_top)
    umax = float(prof.cw[k0:k1].max() / 2 + 1)
    P = cv.P[_iu(cv, -umax, umax), :, k0:k1]
    lab, tis = T.label_of(P), T.tissue_of(P)
    sac = np.isin(lab, (SPINAL_CANAL, SPINAL_CORD)) & np.isin(tis, T.SAC)
    area = sac.sum(axis=(0, 1)).astype(float)
    ref = float(prof.sac_area[k0:k1].mean())
    return float(np.clip(1 - area.min() / ref, 0, 1)) if ref > 0 else 0.0


def recess_compromise(cv: Canvas, prof: CanalProfile, d: DiscShape, sign: float) -> float:
    k0, k1 = _slabs(cv, d.s_bot, d.s_top)
    free = ref = 0.0
    N = cv.axis("n")[None, :]
    for k in range(k0, k1):
        cw2, cap, nw, nc = prof.cw[k] / 2, prof.cap[k], prof.n_wall[k], prof.n_centre[k]
        lo, hi = (cw2 - 5, cw2 - 0.5)
        su = _iu(cv, -hi, -lo) if sign < 0 else _iu(cv, lo, hi)
        U = cv.axis("u")[su][:, None]
        box = (N >= nw - 0.45 * cap) & (N <= nw - 0.5)
        inside = box & (np.abs(U / cw2) ** CANAL_POWER + np.abs((N - nc) / (cap / 2)) ** CANAL_POWER <= 1)
        P = cv.P[su, :, k]
        free += float((inside & np.isin(T.tissue_of(P), FREE)).sum())
        ref += float(inside.sum())
    return float(np.clip(1 - free / ref, 0, 1)) if ref > 0 else 0.0


def foramen_compromise(cv: Canvas, prof: CanalProfile, layout: SpineLayout, d: DiscShape, sign: float) -> float:
    """Free area of the foramen between the pedicles, between the back of the bodies/disc and the
    superior articular process, averaged over its parasagittal band; healthy = the same box with the
    disc at its healthy height."""
    up, lo = layout.segment(d.upper), layout.segment(d.lower)
    s_lo = lo.s_bot + 0.91 * lo.H + 0.5  # just above the lower pedicle
    s_hi = up.s_bot + 0.37 * up.H - 0.5  # just below the upper pedicle
    k0, k1 = _slabs(cv, s_lo, s_hi)
    cw2, pw = up.cw / 2, up.pw
    su = _iu(cv, -(cw2 + pw), -(cw2 + 1)) if sign < 0 else _iu(cv, cw2 + 1, cw2 + pw)
    N = cv.axis("n")[None, :, None]
    nw = prof.n_wall[k0:k1][None, None]
    # posterior limit: the articular processes of either vertebra (each on its own wall)
    back = np.maximum(nw - prof.cap[k0:k1][None, None] / 2,
                      max(up.offset - up.D / 2 - up.cap / 2, lo.offset - lo.D / 2 - lo.cap / 2)) + 1
    depth_box = (N >= back) & (N <= nw - 1)
    P = cv.P[su, :, k0:k1]
    free_vox = depth_box & np.isin(T.tissue_of(P), (T.EPIDURAL_FAT, T.NERVE)) & (T.label_of(P) == 0)
    n_cols = max(P.shape[0], 1)
    free_area = free_vox.sum() / n_cols
    per_slab = depth_box.sum() / max(k1 - k0, 1)
    ref = per_slab * ((k1 - k0) + max(d.healthy_height - d.height, 0.0))
    return float(np.clip(1 - free_area / ref, 0, 1)) if ref > 0 else 0.0


def grade_level(cv: Canvas, prof: CanalProfile, layout: SpineLayout, d: DiscShape, p: DiscPathology):
    """Every head's ground-truth grade at this level, and the measurements behind them."""
    up, lo = layout.vertebra(d.upper), layout.vertebra(d.lower)
    ratio = d.height / d.healthy_height if d.healthy_height > 0 else 1.0
    if d.rudimentary:
        ratio = 1.0  # a transitional disc is small by nature, not narrowed
    m = {
        "height_ratio": ratio,
        "hydration": p.hydration,
        "slip_mm": abs(up.offset - lo.offset),
        "central_compromise": central_compromise(cv, prof, d),
        "recess_compromise_left": recess_compromise(cv, prof, d, -1),
        "recess_compromise_right": recess_compromise(cv, prof, d, 1),
        "foramen_compromise_left": foramen_compromise(cv, prof, layout, d, -1),
        "foramen_compromise_right": foramen_compromise(cv, prof, layout, d, 1),
    }
    g = {
        "pfirrmann": pfirrmann_grade(p.hydration, ratio),
        "disc_narrowing": narrowing_grade(ratio),
        "disc_bulging": int(p.bulge_mm >= BULGE_MM),
        "disc_herniation": int(p.herniation_mm >= HERNIATION_MM),
        "spondylolisthesis": int(m["slip_mm"] >= SLIP_MM),
        "upper_endplate_defect": int(p.upper_endplate_defect_mm >= ENDPLATE_MM),
        "lower_endplate_defect": int(p.lower_endplate_defect_mm >= ENDPLATE_MM),
        "modic": int(p.modic),
        "central_canal_stenosis": stenosis_grade(m["central_compromise"]),
        "foraminal_stenosis_left": stenosis_grade(m["foramen_compromise_left"]),
        "foraminal_stenosis_right": stenosis_grade(m["foramen_compromise_right"]),
        "lateral_recess_stenosis_left": stenosis_grade(m["recess_compromise_left"]),
        "lateral_recess_stenosis_right": stenosis_grade(m["recess_compromise_right"]),
    }
    assert set(g) == set(HEADS)
    grades: Dict[str, Grade] = {h: Grade.certain(h, v) for h, v in g.items()}
    return grades, {k: round(float(v), 4) for k, v in m.items()}
