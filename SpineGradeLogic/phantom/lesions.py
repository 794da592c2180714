"""Focal pathology drawn over the healthy anatomy: herniations, Schmorl nodes, Modic changes,
facet hypertrophy (disc height loss, bulges, hydration, flavum thickening and slips are part of
the anatomy itself, see `anatomy.py`, `bone.py` and `soft.py`)."""

from __future__ import annotations

import numpy as np

from ..names import POSTERIOR_OFFSET
from . import tissues as T
from .anatomy import DiscShape, SpineLayout
from .bone import CORTEX_MM
from .canvas import Canvas
from .pathology import DiscPathology

MODIC_TISSUE = {1: T.MODIC1, 2: T.MODIC2, 3: T.MODIC3}


def herniation_centre_u(side: str, cw: float, pw: float) -> float:
    """Lateral position of a herniation: central, paracentral (left/right) or foraminal."""
    sign = -1.0 if side.endswith("left") else 1.0  # RAS: +u is the patient's right
    if side == "central":
        return 0.0
    if side.startswith("foraminal"):
        return sign * (cw / 2 + pw / 2 + 1)
    return sign * 0.3 * cw


def paint_herniation(cv: Canvas, layout: SpineLayout, d: DiscShape, p: DiscPathology) -> None:
    if p.herniation_mm <= 0:
        return
    up = layout.vertebra(d.upper)
    off = 0.5 * (up.offset + layout.vertebra(d.lower).offset)
    nw = off - up.D / 2
    uc = herniation_centre_u(p.herniation_side, up.cw, up.pw)
    w2 = p.herniation_width_mm / 2
    depth = p.herniation_mm
    hs = max(d.height / 2 + 1.5, 3.0) + 0.15 * depth
    b = cv.box((uc - w2 - 1, uc + w2 + 1), (nw - depth - 2, nw + 3), (d.s_mid - hs - 1, d.s_mid + hs + 1))
    if b is None:
        return
    view, U, N, S = b
    m = ((U - uc) / w2) ** 2 + ((N - nw - 1) / (depth + 1)) ** 2 + ((S - d.s_mid) / hs) ** 2 <= 1
    Canvas.paint(view, m & (N <= nw + 1), d.label, T.HERNIA, only=T.DISPLACEABLE + (T.ANNULUS, T.FACET_FLUID))


def paint_endplate_defect(cv: Canvas, layout: SpineLayout, d: DiscShape, p: DiscPathology, rng) -> None:
    """Schmorl nodes: disc material pushed into the body above (upper) or below (lower), sclerotic rim."""
    for which, depth in (("upper", p.upper_endplate_defect_mm), ("lower", p.lower_endplate_defect_mm)):
        if depth <= 0:
            continue
        v = layout.vertebra(d.upper if which == "upper" else d.lower)
        sign = 1.0 if which == "upper" else -1.0
        s0 = d.s_top if which == "upper" else d.s_bot
        uc = rng.uniform(-0.15, 0.15) * v.W
        nc = v.offset + rng.uniform(-0.15, 0.1) * v.D
        r = max(2.0, 0.9 * depth + 1.5)
        b = cv.box((uc - r - 2, uc + r + 2), (nc - r - 2, nc + r + 2), (s0 - 2, s0 + sign * (depth + 4)))
        if b is None:
            continue
        view, U, N, S = b
        e = ((U - uc) / r) ** 2 + ((N - nc) / r) ** 2 + ((S - s0) / (depth + 1.5)) ** 2
        into = sign * (S - s0) >= -0.5
        rim = (e <= ((depth + 1.5 + CORTEX_MM) / (depth + 1.5)) ** 2) & into
        Canvas.paint(view, rim, v.label, T.CORTEX, only=(T.MARROW, T.VEIN))
        Canvas.paint(view, (e <= 1) & into, d.label, T.HERNIA, only=(T.MARROW, T.CORTEX, T.VEIN))


def paint_modic(cv: Canvas, layout: SpineLayout, d: DiscShape, p: DiscPathology, rng) -> None:
    """Marrow change in the bands of both bodies next to the disc."""
    if p.modic <= 0:
        return
    tissue = MODIC_TISSUE[int(p.modic)]
    for v, toward_disc in ((layout.vertebra(d.upper), -1), (layout.vertebra(d.lower), 1)):
        depth = rng.uniform(0.25, 0.5) * v.H
        edge = v.s_bot if toward_disc < 0 else v.s_top
        lo, hi = (edge, edge + depth) if toward_disc < 0 else (edge - depth, edge)
        b = cv.box((-v.W / 2, v.W / 2), (v.offset - v.D / 2, v.offset + v.D / 2), (lo - 2, hi + 2))
        if b is None:
            continue
        view, U, N, S = b
        # the band is deepest in the middle of the endplate and thins towards the rim
        rr = (U / (v.W / 2)) ** 2 + ((N - v.offset) / (v.D / 2)) ** 2
        reach = depth * np.clip(1.1 - 0.6 * rr, 0, 1)
        m = (np.abs(S - edge) <= reach)
        Canvas.paint(view, m, v.label, tissue, only=(T.MARROW, T.VEIN))


def paint_facet_hypertrophy(cv: Canvas, layout: SpineLayout, d: DiscShape, p: DiscPathology) -> None:
    """The lower vertebra's superior articular process grows forward and medially."""
    lo = layout.vertebra(d.lower)
    up = layout.vertebra(d.upper)
    nw = lo.offset - lo.D / 2
    back = nw - lo.cap
    cw2, pw = lo.cw / 2, lo.pw
    lab = POSTERIOR_OFFSET + lo.label
    for sign, fh in ((-1.0, p.facet_left_mm), (1.0, p.facet_right_mm)):
        if fh <= 0:
            continue
        u_in, u_out = cw2 + 0.5 - fh, cw2 + pw + 2.5 + 0.5 * fh
        s_lo, s_hi = lo.s_top - 0.3 * lo.H, up.s_bot - 0.15 * d.height + 0.5 * fh
        b = cv.box(tuple(sorted((sign * (u_in - 1.5), sign * u_out))), (back - 4 - 0.5 * fh, nw - 0.5 * lo.cap + fh + 1),
                   (s_lo, s_hi))
        if b is None:
            continue
        view, U, N, S = b
        su = sign * U
        # a rounded bony mass grown from the process's anteromedial corner, into the recess and foramen
        cu, cn, r = cw2 + 1.0, nw - 0.5 * lo.cap - 1.0, 1.1 * fh + 0.5
        m = ((su - cu) / r) ** 2 + ((N - cn) / r) ** 2 <= 1
        pillar = (su >= cw2 + 0.5) & (su <= cw2 + pw + 2.5 + 0.5 * fh) & (N <= cn + 1) & (N >= back - 4 - 0.5 * fh)
        m = m | pillar
        inner = ((su - cu) / max(r - CORTEX_MM, 0.5)) ** 2 + ((N - cn) / max(r - CORTEX_MM, 0.5)) ** 2 <= 1
        Canvas.paint(view, m, lab, T.CORTEX, only=T.DISPLACEABLE + (T.FACET_FLUID,))
        Canvas.paint(view, m & inner, lab, T.MARROW, only=(T.CORTEX,))


def paint_lesions(cv: Canvas, layout: SpineLayout, path, rng) -> None:
    for d in layout.discs:
        p = path[d.level]
        paint_facet_hypertrophy(cv, layout, d, p)
        paint_herniation(cv, layout, d, p)
        paint_endplate_defect(cv, layout, d, p, rng)
        paint_modic(cv, layout, d, p, rng)
