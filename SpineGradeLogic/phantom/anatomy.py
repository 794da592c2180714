"""The spine's layout: which vertebrae there are, their sizes, and where they sit along the spine.

Everything here is in the *straightened* spine frame, in millimetres: ``s`` runs along the spine
(0 at the sacral tip, increasing superiorly), ``n`` runs anterior from the vertebral-body axis, ``u``
runs to the patient's right. `curve.py` bends this frame into the patient (lordosis, kyphosis,
scoliosis); `paint.py` draws the tissues in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..names import SPINE_ORDER, VERTEBRA_LABELS

# Adult reference sizes (mm) at key vertebrae, interpolated in between: body height H, width W,
# depth D, healthy disc height below, canal width cw and depth cap, pedicle width pw, spinous
# process length sp and its downward slope, transverse process length tp.
_KEYS = ["C1", "C2", "C5", "C7", "T1", "T6", "T12", "L1", "L3", "L4", "L5", "S1"]
_TABLE = np.array([
    # H     W     D    disc   cw    cap   pw    sp   slope  tp
    [10.0, 16.0, 10.0, 0.0, 25.0, 16.0, 5.0, 12.0, 0.2, 12.0],
    [22.0, 18.0, 15.0, 4.5, 24.0, 15.0, 5.0, 24.0, 0.3, 10.0],
    [13.5, 22.0, 16.0, 5.0, 25.0, 14.0, 5.0, 18.0, 0.3, 10.0],
    [14.5, 26.0, 17.0, 5.0, 23.0, 14.0, 6.0, 34.0, 0.4, 15.0],
    [16.5, 28.0, 18.0, 4.0, 18.0, 14.0, 6.0, 36.0, 0.7, 18.0],
    [19.5, 32.0, 25.0, 4.5, 16.0, 15.0, 6.0, 40.0, 1.0, 18.0],
    [24.0, 40.0, 30.0, 7.5, 20.0, 16.0, 7.0, 30.0, 0.3, 12.0],
    [26.0, 43.0, 31.0, 9.0, 22.0, 17.0, 8.0, 36.0, 0.1, 18.0],
    [27.0, 47.0, 33.0, 11.0, 23.0, 16.0, 9.0, 38.0, 0.0, 24.0],
    [27.0, 49.0, 34.0, 12.0, 24.0, 16.0, 10.0, 36.0, 0.0, 22.0],
    [26.0, 51.0, 34.0, 11.0, 26.0, 16.0, 12.0, 30.0, 0.0, 20.0],
    [30.0, 50.0, 34.0, 0.0, 26.0, 14.0, 12.0, 15.0, 0.0, 0.0],
])
_COLS = ["H", "W", "D", "disc", "cw", "cap", "pw", "sp", "slope", "tp"]
SACRUM_LENGTH = 100.0  # S1 top to the sacral tip along the curve
SKULL_SPACE = 90.0  # straightened space kept above C1


@dataclass
class VertebraShape:
    """One vertebra in the straightened frame (mm)."""

    name: str
    label: int
    s_bot: float
    s_top: float
    H: float
    W: float
    D: float
    cw: float
    cap: float
    pw: float
    sp: float
    slope: float
    tp: float
    offset: float = 0.0  # anterior shift of the whole vertebra (spondylolisthesis above it)
    sacralised: bool = False

    @property
    def s_mid(self) -> float:
        return 0.5 * (self.s_bot + self.s_top)


@dataclass
class DiscShape:
    """One disc (the gap between ``upper`` and ``lower``) in the straightened frame."""

    upper: str
    lower: str
    label: int
    s_bot: float
    s_top: float
    healthy_height: float
    rudimentary: bool = False

    @property
    def level(self) -> str:
        return f"{self.upper}/{self.lower}"

    @property
    def height(self) -> float:
        return self.s_top - self.s_bot

    @property
    def s_mid(self) -> float:
        return 0.5 * (self.s_bot + self.s_top)


@dataclass
class SpineLayout:
    """All vertebrae and discs, inferior first, with the spine's total straightened length."""

    vertebrae: List[VertebraShape]
    discs: List[DiscShape]
    length: float
    transitional: str  # "none", "L6", "T13" or "sacralised_L5"
    conus_s: float
    sac_end_s: float
    extra: Dict[str, float] = field(default_factory=dict)

    def vertebra(self, name: str) -> VertebraShape:
        return next(v for v in self.vertebrae if v.name == name)

    def segment(self, name: str) -> VertebraShape:
        """The vertebra as a motion segment: for the sacrum, only its S1 part (height ``H`` at the top)."""
        v = self.vertebra(name)
        if name != "S1":
            return v
        return VertebraShape(**{**v.__dict__, "s_bot": v.s_top - v.H})

    def disc(self, level: str) -> Optional[DiscShape]:
        return next((d for d in self.discs if d.level == level), None)

    def profile(self, s: np.ndarray, attr: str) -> np.ndarray:
        """A vertebra size (e.g. ``"cw"``) along ``s``, linear between vertebra centres."""
        mids = np.array([self.segment(v.name).s_mid for v in self.vertebrae])
        vals = np.array([getattr(v, attr) for v in self.vertebrae], dtype=float)
        return np.interp(s, mids, vals)

    def offset_profile(self, s: np.ndarray, canal: bool = False) -> np.ndarray:
        """Anterior shift along ``s``: constant over each vertebra, a ramp across each disc.

        With ``canal``, the ramp runs from the disc's middle to the upper vertebra's middle: the dural
        sac stays with the lower vertebra at a slipped level, so the slipped arch above narrows it.
        """
        pts, vals = [], []
        for i, v in enumerate(self.vertebrae):
            seg = self.segment(v.name)
            if canal and i > 0 and v.offset != self.vertebrae[i - 1].offset:
                below = self.vertebrae[i - 1]
                mid_disc = 0.5 * (below.s_top + v.s_bot)
                pts += [mid_disc, seg.s_mid, v.s_top]
                vals += [below.offset, v.offset, v.offset]
            else:
                pts += [seg.s_bot, v.s_top]
                vals += [v.offset, v.offset]
        return np.interp(s, pts, vals)


def reference_sizes(name: str) -> Dict[str, float]:
    """Adult reference sizes of vertebra ``name`` (transitional ones borrow their neighbours')."""
    alias = {"T13": "T12", "L6": "L5"}.get(name, name)
    idx = SPINE_ORDER.index(alias) if alias != "S1" else SPINE_ORDER.index("S1")
    key_idx = [SPINE_ORDER.index(k) for k in _KEYS]
    return {c: float(np.interp(idx, key_idx, _TABLE[:, i])) for i, c in enumerate(_COLS)}


def vertebra_names(transitional: str) -> List[str]:
    """C1..S1 in cranio-caudal order for this transitional anatomy."""
    names = [v for v in SPINE_ORDER if v not in ("T13", "L6")]
    if transitional == "T13":
        names.insert(names.index("L1"), "T13")
    elif transitional == "L6":
        names.insert(names.index("S1"), "L6")
    return names


def build_layout(rng: np.random.Generator, scale: float, transitional: str,
                 disc_height_ratio: Dict[str, float]) -> SpineLayout:
    """Stack vertebrae and discs from the sacral tip upwards.

    Args:
        rng: the anatomy random stream.
        scale: person size factor.
        transitional: "none", "L6", "T13" or "sacralised_L5".
        disc_height_ratio: level -> height as a fraction of healthy (pathology).
    """
    names = vertebra_names(transitional)[::-1]  # inferior first: S1, L5, ...
    verts: List[VertebraShape] = []
    discs: List[DiscShape] = []
    s = 0.0
    for i, name in enumerate(names):
        ref = reference_sizes(name)
        jit = {k: v * scale * rng.uniform(0.95, 1.05) for k, v in ref.items() if k not in ("slope",)}
        jit["slope"] = ref["slope"]
        if name == "S1":
            s_bot, s_top = 0.0, SACRUM_LENGTH * scale
        else:
            lower = names[i - 1]
            healthy = reference_sizes(name)["disc"] * scale * rng.uniform(0.9, 1.1)
            rudimentary = transitional == "sacralised_L5" and name == "L5"
            if rudimentary:
                healthy = 2.5
            if name == "C1":  # atlas-axis: no disc, a thin ligamentous gap
                gap = 2.0
            else:
                level = f"{name}/{lower}"
                gap = max(1.0, healthy * disc_height_ratio.get(level, 1.0))
                discs.append(DiscShape(name, lower, 100 + VERTEBRA_LABELS[name], s, s + gap, healthy, rudimentary))
            s_bot = s + gap
            s_top = s_bot + jit["H"]
        verts.append(VertebraShape(name, VERTEBRA_LABELS[name], s_bot, s_top, jit["H"], jit["W"], jit["D"],
                                   jit["cw"], jit["cap"], jit["pw"], jit["sp"], jit["slope"], jit["tp"],
                                   sacralised=(transitional == "sacralised_L5" and name == "L5")))
        s = s_top
    length = s + SKULL_SPACE
    by = {v.name: v for v in verts}
    # conus medullaris between T12/L1 and L2 (most often L1/L2); the dural sac ends at S2
    conus_at = rng.choice(["T12", "L1", "L1", "L2"])
    cv = by[conus_at] if conus_at in by else by["L1"]
    conus_s = cv.s_bot + rng.uniform(-0.3, 0.5) * cv.H
    sacrum = by["S1"]
    sac_end_s = sacrum.s_top - 0.45 * SACRUM_LENGTH * scale
    return SpineLayout(verts, discs, length, transitional, float(conus_s), float(sac_end_s))
