"""Vertebrae, discs and sacrum in the straightened frame.

Bodies are superellipse cylinders with concave endplates, a cortical shell and fatty marrow;
posterior elements (pedicles, laminae, spinous and transverse processes, articular processes with
their facet joints) carry ``POSTERIOR_OFFSET + value``; discs have an annulus, a nucleus whose size
follows its hydration, and an intranuclear cleft once the nucleus starts to dry.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..names import POSTERIOR_OFFSET, VERTEBRA_LABELS
from . import tissues as T
from .anatomy import SpineLayout, VertebraShape
from .canal import CANAL_POWER, CanalProfile
from .canvas import Canvas
from .pathology import DiscPathology

BODY_POWER = 2.4
CONCAVITY = 1.5  # mm of endplate concavity at the centre
CORTEX_MM = 1.1
# what bone may be drawn over; the sac is included so that a slipped lamina narrows the canal
SOFT = (T.BACKGROUND, T.SKIN, T.FAT, T.MUSCLE, T.PSOAS, T.ABDOMEN, T.MEDIASTINUM, T.LUNG, T.EPIDURAL_FAT,
        T.LIGAMENT, T.NERVE, T.VESSEL, T.FACET_FLUID, T.CSF, T.CORD)


def _shell(cv_view, outer, inner, label: int, only=SOFT) -> None:
    """Cortex where ``outer``, marrow where ``inner`` (inside it)."""
    Canvas.paint(cv_view, outer, label, T.CORTEX, only=only)
    Canvas.paint(cv_view, outer & inner, label, T.MARROW, only=(T.CORTEX,))


def _body_q(U, N, v: VertebraShape, half_w: float, half_d: float, centre_n: float):
    return np.abs(U / half_w) ** BODY_POWER + np.abs((N - centre_n) / half_d) ** BODY_POWER


def paint_body(cv: Canvas, v: VertebraShape, taper=None) -> None:
    """Vertebral body (or the sacral mass): cortex, marrow, concave endplates, basivertebral vein."""
    b = cv.box((-v.W / 2 - 1, v.W / 2 + 1), (v.offset - v.D / 2 - 1, v.offset + v.D / 2 + 1), (v.s_bot - 1, v.s_top + 1))
    if b is None:
        return
    view, U, N, S = b
    f = 1.0 if taper is None else taper(S)
    if taper is None:  # a waist at mid-height and rounded rims at the endplates
        zeta = np.clip(np.abs(S - v.s_mid) / max(v.H / 2, 1), 0, 1)
        f = 1 - 0.05 * (1 - zeta ** 2) - 0.12 * np.clip((zeta - 0.85) / 0.15, 0, 1) ** 2
    hw, hd = v.W / 2 * f, v.D / 2 * f
    q = _body_q(U, N, v, hw, hd, v.offset if taper is None else v.offset - (v.D / 2) * (1 - f))
    rn = q ** (1 / BODY_POWER)
    cav = CONCAVITY * np.clip(1 - rn ** 2, 0, 1)
    lo, hi = v.s_bot + cav, v.s_top - cav
    body = (rn <= 1) & (S >= lo) & (S <= hi)
    inner = (rn <= 1 - CORTEX_MM / np.minimum(hw, hd)) & (S >= lo + CORTEX_MM) & (S <= hi - CORTEX_MM)
    Canvas.paint(view, body, v.label, T.CORTEX)
    Canvas.paint(view, body & inner, v.label, T.MARROW)
    if taper is None and v.H > 12:
        vein = (np.abs(U) < 2.5) & (N < v.offset - v.D / 2 + 7) & (np.abs(S - v.s_mid) < 1.5) & body
        Canvas.paint(view, vein, v.label, T.VEIN)


def paint_disc(cv: Canvas, layout: SpineLayout, prof: CanalProfile, d, p: DiscPathology) -> None:
    """Annulus, nucleus (size and cleft from hydration), bulge; sheared between slipped vertebrae."""
    up, lo = layout.vertebra(d.upper), layout.vertebra(d.lower)
    a0 = (up.W + min(lo.W, up.W * 1.1)) / 4 * 0.98
    b0 = (up.D + min(lo.D, up.D * 1.1)) / 4
    r_max = max(a0, b0) + p.bulge_mm + 2
    b = cv.box((-r_max, r_max), (min(up.offset, lo.offset) - r_max, max(up.offset, lo.offset) + r_max),
               (d.s_bot - CONCAVITY - 1, d.s_top + CONCAVITY + 1))
    if b is None:
        return
    view, U, N, S = b
    off = layout.offset_profile(S[0, 0])[None, None]  # the disc shears between its two bodies
    h2 = max(d.height / 2, 0.5)
    mid = d.s_mid
    along = np.clip(1 - ((S - mid) / (h2 + CONCAVITY)) ** 2, 0, 1)  # bulges most at mid-height
    bulge = p.bulge_mm * along
    ha, hb = a0 + bulge, b0 + bulge
    q = np.abs(U / ha) ** 2.3 + np.abs((N - off) / hb) ** 2.3
    rn = q ** (1 / 2.3)
    cav = CONCAVITY * np.clip(1 - (np.minimum(rn, 1) * (ha / a0)) ** 2, 0, 1)
    disc = (rn <= 1) & (np.abs(S - mid) <= h2 + cav) & (N >= off - b0 - bulge + 0.5)
    Canvas.paint(view, disc, d.label, T.ANNULUS)
    if d.rudimentary:
        return
    ns = 0.55 + 0.45 * p.hydration  # a drying nucleus shrinks and loses its edge
    nuc = (U / (0.7 * a0 * ns)) ** 2 + ((N - off + 0.06 * b0) / (0.72 * b0 * ns)) ** 2 + \
        ((S - mid) / ((h2 + CONCAVITY) * (0.42 + 0.4 * ns))) ** 2 <= 1
    Canvas.paint(view, disc & nuc, d.label, T.NUCLEUS)
    if p.hydration < 0.9:
        cleft = nuc & (np.abs(S - mid) < 0.6) & (np.abs(U) < 0.45 * a0)
        Canvas.paint(view, disc & cleft, d.label, T.CLEFT)


def paint_posterior(cv: Canvas, layout: SpineLayout, v: VertebraShape, above_gap: float, below_gap: float,
                    below_h: float) -> None:
    """Pedicles, laminae, spinous and transverse processes, articular processes and facet joints."""
    lab = POSTERIOR_OFFSET + v.label
    o, H = v.offset, v.H
    nw = o - v.D / 2
    nc = nw - v.cap / 2
    back = nw - v.cap
    cw2, pw = v.cw / 2, v.pw
    lt = 6.0 if v.name.startswith(("L", "T")) else 4.5
    extent = cw2 + pw + v.tp + 2
    b = cv.box((-extent, extent), (back - lt - v.sp - 4, nw + 4), (v.s_bot - below_gap - 0.3 * below_h - 2,
                                                                 v.s_top + above_gap + 2))
    if b is None:
        return
    view, U, N, S = b
    aU = np.abs(U)
    qc = np.abs(U / cw2) ** CANAL_POWER + np.abs((N - nc) / (v.cap / 2)) ** CANAL_POWER
    # pedicles: upper part of the body, either side of the canal
    sc, hs = v.s_bot + 0.64 * H, 0.27 * H
    uc, hu = cw2 + pw / 2 - 0.5, pw / 2 + 0.5
    e = ((aU - uc) / hu) ** 2 + ((S - sc) / hs) ** 2
    ped = (e <= 1) & (N >= nw - 0.5 * v.cap - 2) & (N <= nw + 3) & (qc > 1)
    _shell(view, ped, e <= (1 - CORTEX_MM / hu) ** 2, lab)
    # laminae: the roof of the canal
    lam = (aU <= cw2 + pw * 0.8) & (N >= back - lt) & (N <= nc - 1) & (qc > 1.05) & \
        (S >= v.s_bot - 0.2 * H) & (S <= v.s_top - 0.25 * H)
    lam_in = (N >= back - lt + CORTEX_MM) & (S >= v.s_bot - 0.2 * H + CORTEX_MM) & (S <= v.s_top - 0.25 * H - CORTEX_MM) \
        & (aU <= cw2 + pw * 0.8 - CORTEX_MM)
    _shell(view, lam, lam_in, lab)
    # spinous process: a hatchet in the lumbar spine, long and sloping down in the thorax
    spw = 0.1 * v.W + 2.0
    depth = np.clip(back - 1 - N, 0, None)
    frac = depth / max(v.sp, 1)
    centre = v.s_mid - 0.12 * H - v.slope * depth
    hh = 0.31 * H * (1 - 0.4 * frac)
    sp = (aU <= spw / 2) & (N <= back - 1) & (frac <= 1) & (np.abs(S - centre) <= hh)
    sp_in = (aU <= spw / 2 - CORTEX_MM) & (np.abs(S - centre) <= hh - CORTEX_MM) & (frac <= 1 - CORTEX_MM / max(v.sp, 1))
    # interspinous ligament down to the next spinous process, then the process itself
    lig = (aU <= spw / 2 - 0.5) & (N <= back - 1) & (frac <= 0.95) & (S < centre - hh) & (S >= centre - hh - below_gap - 0.5 * H)
    Canvas.paint(view, lig, 0, T.LIGAMENT, only=(T.MUSCLE, T.FAT))
    _shell(view, sp, sp_in, lab)
    # transverse processes
    if v.tp > 0:
        tn = nw - 0.55 * v.cap
        th = 0.17 * H + (6 if v.sacralised else 0)
        tlen = v.tp * (1.6 if v.sacralised else 1.0)
        tpm = (aU >= cw2 + pw - 1) & (aU <= cw2 + pw + tlen) & (((N - tn) / 3.5) ** 2 + ((S - sc) / th) ** 2 <= 1)
        tpi = (((N - tn) / 2.2) ** 2 + ((S - sc) / max(th - 1.3, 0.5)) ** 2 <= 1) & (aU <= cw2 + pw + tlen - 1.3)
        _shell(view, tpm, tpi, lab)
    # articular processes: the superior one rises into the disc level above, the inferior one
    # descends behind the next vertebra's superior process; a thin joint space between them
    if v.name != "C1":
        sap = (aU >= cw2 + 0.5) & (aU <= cw2 + pw + 2.5) & (N >= back - 4) & (N <= nw - 0.5 * v.cap) & \
            (S >= v.s_top - 0.3 * H) & (S <= v.s_top + 0.85 * above_gap)
        sap_in = (aU >= cw2 + 0.5 + CORTEX_MM) & (aU <= cw2 + pw + 2.5 - CORTEX_MM) & (N >= back - 4 + CORTEX_MM) & \
            (N <= nw - 0.5 * v.cap - CORTEX_MM) & (S <= v.s_top + 0.85 * above_gap - CORTEX_MM)
        _shell(view, sap, sap_in, lab)
        joint = (aU >= cw2 + 1) & (aU <= cw2 + pw + 2.5) & (N >= back - 5.2) & (N < back - 4) & \
            (S >= v.s_top - 0.1 * H) & (S <= v.s_top + 0.85 * above_gap)
        Canvas.paint(view, joint, 0, T.FACET_FLUID, only=(T.MUSCLE, T.FAT, T.EPIDURAL_FAT, T.LIGAMENT))
    if v.name != "S1":
        iap = (aU >= cw2 + 1) & (aU <= cw2 + pw + 3.5) & (N >= back - 11) & (N <= back - 5.2) & \
            (S >= v.s_bot - below_gap - 0.25 * below_h) & (S <= v.s_bot + 0.25 * H)
        iap_in = iap & (aU >= cw2 + 1 + CORTEX_MM) & (aU <= cw2 + pw + 3.5 - CORTEX_MM) & \
            (N >= back - 11 + CORTEX_MM) & (N <= back - 5.2 - CORTEX_MM)
        _shell(view, iap, iap_in, lab)


def paint_sacrum(cv: Canvas, layout: SpineLayout) -> None:
    """S1 body, the tapering fused segments with remnant discs, the alae and the dorsal plate (all label 26)."""
    v = layout.vertebra("S1")
    L = v.s_top - v.s_bot
    base = v.s_top - 0.3 * L

    def taper(S):
        return np.clip(0.35 + 0.65 * (S - v.s_bot) / max(base - v.s_bot, 1), 0.35, 1.0)

    paint_body(cv, v, taper=taper)
    lab = v.label
    b = cv.box((-v.W / 2 - 40, v.W / 2 + 40), (v.offset - v.D / 2 - v.cap - 30, v.offset + v.D / 2 + 2),
               (v.s_bot, v.s_top + 1))
    if b is None:
        return
    view, U, N, S = b
    aU = np.abs(U)
    f = taper(S)
    nw = v.offset - v.D / 2
    # remnant discs between fused segments
    for i, frac in enumerate((0.3, 0.47, 0.62, 0.75)):
        sd = v.s_top - frac * L
        rem = (np.abs(S - sd) <= (0.9 if i < 2 else 0.5)) & \
            (np.abs(U / (v.W / 2 * f)) ** 2 + np.abs((N - v.offset + v.D / 2 * (1 - f)) / (v.D / 2 * f)) ** 2 <= 0.7)
        Canvas.paint(view, rem, lab, T.ANNULUS, only=(T.MARROW,))
    # alae: lateral masses of the upper sacrum
    ala_top = v.s_top - 0.12 * v.H - 2  # below the top of the S1 pedicles: the L5/S1 foramen stays open
    ala = (aU >= v.W / 2 - 6) & (aU <= v.W / 2 + 38) & (N >= nw - 8) & (N <= v.offset + v.D / 2 - 8) & \
        (S <= ala_top) & (S >= ala_top - 0.45 * L * (1 - (aU - v.W / 2 + 6) / 60))
    ala_in = ala & (N >= nw - 8 + CORTEX_MM) & (N <= v.offset + v.D / 2 - 8 - CORTEX_MM) & (S <= ala_top - CORTEX_MM)
    _shell(view, ala, ala_in, lab)
    # dorsal plate and median crest behind the sacral canal
    back = nw - v.cap * (0.6 + 0.4 * f)
    plate = (aU <= v.cw / 2 + 10) & (N <= back) & (N >= back - 7) & (S <= v.s_top - 0.25 * L)
    crest = (aU <= 3) & (N <= back - 7) & (N >= back - 16) & (S <= v.s_top - 0.3 * L) & (S >= v.s_bot + 0.25 * L)
    _shell(view, plate | crest, (aU <= v.cw / 2 + 8.7) & (N <= back - CORTEX_MM) & (N >= back - 7 + CORTEX_MM), lab)


def paint_dens(cv: Canvas, layout: SpineLayout) -> None:
    """The odontoid process of C2 rising behind the anterior arch of C1."""
    c2, c1 = layout.vertebra("C2"), layout.vertebra("C1")
    b = cv.box((-7, 7), (c2.offset - 8, c2.offset + 6), (c2.s_top - 2, c1.s_top - 1))
    if b is None:
        return
    view, U, N, S = b
    dens = (U / 5.5) ** 2 + ((N - c2.offset + 1) / 5.5) ** 2 <= 1
    _shell(view, dens, (U / 4.2) ** 2 + ((N - c2.offset + 1) / 4.2) ** 2 <= 1, c2.label, only=None)


def paint_spine(cv: Canvas, layout: SpineLayout, prof: CanalProfile, path: Dict[str, DiscPathology]) -> None:
    """All discs, bodies and posterior elements, inferior first."""
    for d in layout.discs:
        paint_disc(cv, layout, prof, d, path[d.level])
    verts = layout.vertebrae
    for i, v in enumerate(verts):
        if v.name == "S1":
            paint_sacrum(cv, layout)
        elif v.name == "C1":
            c1 = VertebraShape(**{**v.__dict__, "W": 16.0, "D": 8.0, "offset": v.offset + 5.0})
            paint_body(cv, c1)
        else:
            paint_body(cv, v)
        above = verts[i + 1] if i + 1 < len(verts) else None
        below = verts[i - 1] if i > 0 else None
        above_gap = (above.s_bot - v.s_top) if above else 2.0
        below_gap = (v.s_bot - below.s_top) if below else 2.0
        paint_posterior(cv, layout, layout.segment(v.name), above_gap, below_gap, below.H if below else 10.0)
    if "C2" in VERTEBRA_LABELS and any(v.name == "C1" for v in verts):
        paint_dens(cv, layout)
