"""Soft tissues in the straightened frame: body wall, muscles, organs, and the canal's contents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..names import SPINAL_CANAL, SPINAL_CORD
from . import tissues as T
from .anatomy import SpineLayout
from .canal import CANAL_POWER, CanalProfile
from .canvas import Canvas


@dataclass
class Habitus:
    """Body build: fat and muscle layers and the depth of the trunk in front of the spine."""

    fat_back: float
    cover: float  # soft tissue behind the spinous tips at the midline
    muscle_bulge: float  # how far the paraspinal muscles bulge behind the spinous tips
    abdomen: float  # lumbar body depth in front of the vertebral bodies
    chest: float
    neck: float
    psoas: float

    @classmethod
    def draw(cls, rng: np.random.Generator, config, scale: float) -> "Habitus":
        fat = rng.uniform(*config.subcut_fat_mm)
        return cls(fat, rng.uniform(4, 12), rng.uniform(15, 30) * scale, (rng.uniform(110, 150) + 1.5 * fat) * scale,
                   rng.uniform(120, 160) * scale, rng.uniform(50, 65) * scale, rng.uniform(0.8, 1.2) * scale)


def _region_profiles(layout: SpineLayout, s: np.ndarray):
    by = {v.name: v for v in layout.vertebrae}
    diaphragm = by.get("T13", by["T12"]).s_mid
    neck = by["T1"].s_top
    head = by["C1"].s_top + 2
    return diaphragm, neck, head


def paint_torso(cv: Canvas, layout: SpineLayout, prof: CanalProfile, hab: Habitus) -> None:
    """Skin, subcutaneous fat, trunk muscle and the organ space, front and back of the spine."""
    N = cv.axis("n")[:, None]
    s = prof.s
    diaphragm, neck, head = _region_profiles(layout, s)
    sp = np.interp(s, [v.s_mid for v in layout.vertebrae], [v.sp for v in layout.vertebrae])
    tip = prof.n_wall - prof.cap - 6 - sp  # spinous tips
    # smooth hand-over from abdomen to chest to neck
    w_ch = np.clip((s - diaphragm + 30) / 60, 0, 1)
    w_nk = np.clip((s - neck + 20) / 40, 0, 1)
    front_depth = (hab.abdomen * (1 - w_ch) + hab.chest * w_ch) * (1 - w_nk) + hab.neck * w_nk
    front = prof.offset + prof.D / 2 + front_depth
    fat_front = (hab.fat_back * 1.4 * (1 - w_ch) + hab.fat_back * 0.7 * w_ch) * (1 - w_nk) + 4.0 * w_nk
    # the diaphragm: low at the back (crura at L1), domed up in front
    by = {v.name: v for v in layout.vertebrae}
    dome = by["L1"].s_top + 70 * np.clip((N - prof.offset[None]) / 110, 0, 1) ** 0.6
    organ = np.where(s[None] < dome, T.ABDOMEN, T.MEDIASTINUM)
    organ = np.where(s[None] >= neck, T.MUSCLE, organ)
    base = np.full((cv.shape[1], cv.shape[2]), T.MUSCLE, np.int16)
    base = np.where(N > prof.offset[None] + 2, organ, base)
    base = np.where(N > front[None] - 2 - fat_front[None] - 10, T.MUSCLE, base)  # abdominal/chest wall
    base = np.where(N > front[None] - 2 - fat_front[None], T.FAT, base)
    base = np.where(N > front[None] - 2, T.SKIN, base)
    base = np.where(N > front[None], T.BACKGROUND, base)
    # the back, where paraspinal muscles bulge either side of the spinous processes
    lo = float((tip - hab.cover - hab.muscle_bulge - hab.fat_back - 4).min())
    base = np.where(N < lo, T.BACKGROUND, base)
    cv.P[:] = base[None].astype(np.int16)
    hi = float(tip.max()) + 1
    b = cv.box((cv.u0, cv.u0 + cv.shape[0]), (lo, hi), (cv.s0, cv.s0 + cv.shape[2]))
    if b is None:
        return
    view, U, Nn, S = b
    k0 = int(S[0, 0, 0] - cv.s0)
    tp = tip[k0:k0 + view.shape[2]][None, None]
    bulge = hab.muscle_bulge * (1 - np.exp(-((U / 22.0) ** 2)))
    muscle_edge = tp - hab.cover - bulge
    t = np.where(Nn > muscle_edge, T.MUSCLE, np.where(Nn > muscle_edge - hab.fat_back, T.FAT,
                 np.where(Nn > muscle_edge - hab.fat_back - 2, T.SKIN, T.BACKGROUND)))
    view[...] = np.where(Nn > tp, view, t).astype(np.int16)
    # head: brain in a skull above C1 (only the whole-spine field of view reaches it)
    hb = cv.box((cv.u0, cv.u0 + cv.shape[0]), (-110, 110), (head, cv.s0 + cv.shape[2]))
    if hb is not None:
        view, U, Nn, S = hb
        r = np.sqrt((U / 70) ** 2 + ((Nn + 20) / 85) ** 2 + ((S - head - 70) / 90) ** 2)
        view[...] = np.where(r < 1.0, T.pack(0, T.CORTEX), np.where(r < 1.07, T.pack(0, T.FAT), view))
        view[...] = np.where(r < 0.93, T.pack(0, T.BRAIN), view)
        view[...] = np.where((r >= 1.07) & (r < 1.1), T.pack(0, T.SKIN), np.where(r >= 1.1, 0, view))


def paint_organs(cv: Canvas, layout: SpineLayout, prof: CanalProfile, hab: Habitus) -> None:
    """Psoas, aorta and vena cava, lungs, airway."""
    s = prof.s
    diaphragm, neck, head = _region_profiles(layout, s)
    by = {v.name: v for v in layout.vertebrae}
    full_u = (cv.u0, cv.u0 + cv.shape[0])
    sl = slice(0, len(s))
    # psoas: from T12 to the sacrum, thickening caudally, beside the lumbar bodies
    top = diaphragm
    bot = by["S1"].s_top - 20
    b = cv.box(full_u, (-40, 60), (bot, top))
    if b is not None:
        view, U, N, S = b
        k = (S - cv.s0).astype(int)[0, 0]
        W = prof.W[k][None, None]
        grow = np.clip((top - S) / max(top - bot, 1), 0.15, 1.0) * hab.psoas
        for side in (-1, 1):
            cu = side * (W / 2 + 4 + 14 * grow)
            m = ((U - cu) / (16 * grow + 2)) ** 2 + ((N - prof.offset[k][None, None] - 2) / (18 * grow + 2)) ** 2 <= 1
            Canvas.paint(view, m, 0, T.PSOAS, only=(T.MUSCLE, T.ABDOMEN))
    # aorta (left, to L4) and vena cava (right, lumbar)
    l4 = by["L4"].s_mid
    b = cv.box(full_u, (0, 90), (l4, neck - 40))
    if b is not None:
        view, U, N, S = b
        k = (S - cv.s0).astype(int)[0, 0]
        front = (prof.offset + prof.D / 2)[k][None, None]
        m = ((U + 14) / 11) ** 2 + ((N - front - 13) / 11) ** 2 <= 1
        Canvas.paint(view, m, 0, T.VESSEL, only=(T.ABDOMEN, T.MEDIASTINUM, T.MUSCLE, T.PSOAS))
        m = ((U - 20) / 12) ** 2 + ((N - front - 16) / 8) ** 2 <= 1
        Canvas.paint(view, m & (S < diaphragm), 0, T.VESSEL, only=(T.ABDOMEN, T.PSOAS))
    # lungs either side of the thoracic spine and mediastinum
    b = cv.box(full_u, (-60, 200), (diaphragm, neck + 15))
    if b is not None:
        view, U, N, S = b
        k = (S - cv.s0).astype(int)[0, 0]
        W = prof.W[k][None, None]
        dome = diaphragm + 25 * np.clip((N + 40) / 120, 0, 1)  # the diaphragm rises anteriorly
        m = (np.abs(U) > W / 2 + 6 + 10 * np.exp(-((N - 40) / 60) ** 2)) & (S > dome)
        Canvas.paint(view, m, 0, T.LUNG, only=(T.MEDIASTINUM, T.MUSCLE))
    # airway in front of the cervical spine
    c2 = by["C2"]
    b = cv.box((-12, 12), (0, 80), (neck - 60, c2.s_top))
    if b is not None:
        view, U, N, S = b
        k = (S - cv.s0).astype(int)[0, 0]
        front = (prof.offset + prof.D / 2)[k][None, None]
        m = (U / 8) ** 2 + ((N - front - 22) / 7) ** 2 <= 1
        Canvas.paint(view, m, 0, T.AIRWAY, only=(T.MUSCLE, T.MEDIASTINUM))


def paint_canal(cv: Canvas, layout: SpineLayout, prof: CanalProfile, flavum: np.ndarray) -> None:
    """Epidural fat, ligamentum flavum, dural sac with CSF, cord and conus, cauda equina, exiting roots.

    ``flavum`` is the ligamentum flavum thickness along ``s`` (thicker at hypertrophic levels).
    """
    s = prof.s
    umax = float(prof.cw.max() / 2 + prof.pw.max() + 4)
    nlo = float((prof.n_wall - prof.cap).min()) - 2
    nhi = float(prof.n_wall.max()) + 9
    b = cv.box((-umax, umax), (nlo, nhi), (cv.s0, cv.s0 + cv.shape[2]))
    view, U, N, S = b
    k = slice(int(S[0, 0, 0] - cv.s0), int(S[0, 0, -1] - cv.s0) + 1)

    def at(a):
        return a[k][None, None]

    cw, cap, nw, nc = at(prof.cw), at(prof.cap), at(prof.n_wall), at(prof.n_centre)
    p = CANAL_POWER
    q = np.abs(U / (cw / 2)) ** p + np.abs((N - nc) / (cap / 2)) ** p
    canal = q <= 1
    above_sacrum = S > layout.vertebra("S1").s_top - 0.9 * (layout.vertebra("S1").s_top - layout.sac_end_s) - 40
    # lateral epidural / foraminal fat band, then the canal itself
    band = (np.abs(U) >= cw / 2 - 2) & (np.abs(U) <= cw / 2 + at(prof.pw) + 3) & (N >= nw - cap / 2 - 0.5) & (N <= nw + 8)
    Canvas.paint(view, band & above_sacrum, 0, T.EPIDURAL_FAT)
    Canvas.paint(view, canal, SPINAL_CANAL, T.EPIDURAL_FAT)
    # dural sac (ends at S2), cord to the conus, cauda equina below
    sa, sb, sc = at(prof.sac_a), at(prof.sac_b), at(prof.sac_centre)
    sac = ((U / sa) ** 2 + ((N - sc) / sb) ** 2 <= 1) & (S >= layout.sac_end_s)
    Canvas.paint(view, sac, SPINAL_CANAL, T.CSF)
    taper = np.clip((S - layout.conus_s) / 25.0, 0, 1) ** 0.6
    ca, cb = np.minimum(0.6 * sa, 6.5) * taper, np.minimum(0.62 * sb, 4.3) * taper
    cord = ((U / np.maximum(ca, 1e-3)) ** 2 + ((N - sc - 0.1 * sb) / np.maximum(cb, 1e-3)) ** 2 <= 1) & (S > layout.conus_s)
    Canvas.paint(view, cord, SPINAL_CORD, T.CORD)
    below = (S < layout.conus_s + 15) & (S >= layout.sac_end_s)
    for side in (-1, 1):
        roots = ((U - side * 0.35 * sa) / (0.32 * sa)) ** 2 + ((N - sc + 0.45 * sb) / (0.33 * sb)) ** 2 <= 1
        # the roots run as strands: drop every third millimetre across to look fibrillar
        strands = ((np.round(U * 0.9).astype(int) % 3) != 0)
        Canvas.paint(view, roots & below & strands, SPINAL_CANAL, T.NERVE, only=(T.CSF,))
    # ligamentum flavum lines the back of the canal
    t = at(flavum)
    inner = np.abs(U / np.maximum(cw / 2 - t, 1)) ** p + np.abs((N - nc) / np.maximum(cap / 2 - t, 1)) ** p
    lf = canal & (inner > 1) & (N < nc)
    Canvas.paint(view, lf, 0, T.LIGAMENT, only=T.DISPLACEABLE)
    # exiting roots in the upper foramen below each pedicle
    for v in layout.vertebrae:
        if v.name in ("S1", "C1"):
            continue
        rs = v.s_bot + 0.3 * v.H
        rb = cv.box((-umax, umax), (nlo, nhi), (rs - 5, rs + 5))
        if rb is None:
            continue
        view, U, N, S = rb
        nwv = v.offset - v.D / 2
        m = (np.abs(U) >= v.cw / 2 - 1) & (np.abs(U) <= v.cw / 2 + v.pw + 3)
        m = m & (((N - nwv + 0.3 * v.cap) / 3.0) ** 2 + ((S - rs) / 3.5) ** 2 <= 1)
        Canvas.paint(view, m, 0, T.NERVE, only=(T.EPIDURAL_FAT,))
