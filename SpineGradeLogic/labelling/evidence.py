"""Evidence for the decoder: per-instance score vectors over ``SPINE_ORDER``.

Sources multiply (independent evidence): the network's level probabilities, the sacrum anchor (the
sacrum instance is S1, a vertebral body is not), and the dens (a C2 body is about twice as tall as
C3's, and small). A ``None`` source adds nothing.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..names import SPINE_ORDER
from .instances import SpineInstance

K = len(SPINE_ORDER)
S1 = SPINE_ORDER.index("S1")
C1 = SPINE_ORDER.index("C1")
C2 = SPINE_ORDER.index("C2")
CERVICAL = [SPINE_ORDER.index(f"C{i}") for i in range(1, 8)]

DENS_HEIGHT_RATIO = 1.4  # C2 (body + dens) against the median of the next three bodies
CERVICAL_MAX_MM3 = 10000.0  # a C2 with its dens is 4-8 cm3; any lumbar body is far larger
ATLAS_MAX_SHARE = 0.5  # the atlas's anterior arch and lateral masses: well under half of C2 (body + dens)


def combine(*sources: Optional[np.ndarray]) -> np.ndarray:
    """Elementwise product of (N, K) evidence arrays, rows renormalised; None sources are skipped."""
    used = [np.asarray(s, float) for s in sources if s is not None]
    if not used:
        raise ValueError("no evidence to combine")
    out = np.prod(np.stack(used), axis=0)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-300)


def network_evidence(instances: Sequence[SpineInstance]) -> Optional[np.ndarray]:
    """The instances' own probability vectors, or None when none carries any (uniform rows fill gaps)."""
    if not any(i.probabilities is not None for i in instances):
        return None
    return np.stack([i.probabilities if i.probabilities is not None else np.full(K, 1.0 / K) for i in instances])


def sacrum_evidence(instances: Sequence[SpineInstance], weight: float = 0.01, sacrum_weight: float = 1e-3) -> np.ndarray:
    """The sacrum instance is S1; a vertebral body is anything but S1.

    ``sacrum_weight`` (per other label, 25 of them) is what is left for "the sacrum mask is really a
    vertebra"; ``weight`` is left for "this body is really the sacrum".
    """
    ev = np.ones((len(instances), K))
    for n, inst in enumerate(instances):
        if inst.kind == "sacrum":
            ev[n] = sacrum_weight
            ev[n, S1] = 1.0
        else:
            ev[n, S1] = weight
    return ev


def extent_along(inst: SpineInstance, direction: np.ndarray) -> float:
    """Height of an instance along a unit direction (5th to 95th percentile of its voxels, in mm)."""
    h = inst.points_ras() @ np.asarray(direction, float)
    lo, hi = np.percentile(h, [5, 95])
    return float(hi - lo)


def _c2_candidate(ordered: Sequence[SpineInstance]) -> int:
    """Index of the instance that may be C2: the top one, or the second where the top one is an atlas
    (a body piece under ``ATLAS_MAX_SHARE`` of the instance below it)."""
    if len(ordered) >= 5 and ordered[0].kind == "body" and ordered[0].volume_mm3 < ATLAS_MAX_SHARE * ordered[1].volume_mm3:
        return 1
    return 0


def dens_evidence(ordered: Sequence[SpineInstance], strength: float = 200.0) -> Optional[np.ndarray]:
    """Evidence that the most superior instance (below an atlas, where one was found) is C2 (the dens
    makes it tall for its size).

    Returns None unless the candidate is small (cervical) and at least ``DENS_HEIGHT_RATIO`` times
    taller along the spine than the median of the next three, with a volume that rules out two
    merged bodies. ``strength`` : 1 makes it an anchor (posterior ~0.9 alone) that a confident
    network (odds above 200 : 1 against C2) still overrules; an atlas above it gets the same for C1.
    """
    c = _c2_candidate(ordered)
    if len(ordered) < c + 4:
        return None
    top, nxt = ordered[c], ordered[c + 1 : c + 4]
    axis = top.centroid_mm - ordered[c + 3].centroid_mm
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    h_top = extent_along(top, axis)
    h_next = float(np.median([extent_along(i, axis) for i in nxt]))
    v_next = float(np.median([i.volume_mm3 for i in nxt]))
    if not (top.volume_mm3 < CERVICAL_MAX_MM3 and h_next > 0 and h_top / h_next >= DENS_HEIGHT_RATIO):
        return None
    if top.volume_mm3 / max(v_next, 1e-9) > 2.2:  # two bodies merged, not a dens
        return None
    ev = np.ones((len(ordered), K))
    ev[c, C2] = strength
    if c == 1:
        ev[0, C1] = strength
    return ev


def evidence_for(ordered: Sequence[SpineInstance], anchors: bool = True) -> tuple[np.ndarray, List[str]]:
    """All evidence for ordered instances, and the names of the sources used."""
    sources, used = [], []
    net = network_evidence(ordered)
    if net is not None:
        sources.append(net)
        used.append("network")
    if anchors:
        sources.append(sacrum_evidence(ordered))
        if any(i.kind == "sacrum" for i in ordered):
            used.append("sacrum")
        dens = dens_evidence(ordered)
        if dens is not None:
            sources.append(dens)
            used.append("dens")
    return combine(*sources), used
