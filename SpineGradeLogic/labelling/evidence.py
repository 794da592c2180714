"""Evidence for the decoder: per-instance score vectors over ``SPINE_ORDER``.

Sources multiply (independent evidence): the network's level probabilities, the sacrum anchor (the
sacrum instance is S1, a vertebral body is not), and the dens (a C2 body is about twice as tall as
C3's, and small). A ``None`` source adds nothing. One exception to "a body is not S1": the lowest
piece, where no sacrum was found and the field of view's lower edge cuts that piece
(`cut_by_field_of_view`), may be the top of a sacrum the field of view leaves out; neither the
network nor its shape tells that from an L6, so the priors decide (`edge_sacrum_network`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..names import SPINE_ORDER
from .instances import SpineInstance

K = len(SPINE_ORDER)
S1 = SPINE_ORDER.index("S1")
L6 = SPINE_ORDER.index("L6")
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


#: ``SpineInstance.extra`` key set (True) on a piece that the field of view's inferior edge cuts
CUT_BY_FIELD_OF_VIEW = "cut_by_field_of_view"
#: the evidence source recorded when that piece may be S1
EDGE_SACRUM_SOURCE = "sacrum at the edge of the field of view"


def sacrum_evidence(instances: Sequence[SpineInstance], weight: float = 0.01, sacrum_weight: float = 1e-3,
                    maybe_sacrum: Optional[int] = None) -> np.ndarray:
    """The sacrum instance is S1; a vertebral body is anything but S1 (except ``maybe_sacrum``, the
    index of a body that may be the top of a sacrum cut off by the field of view: no penalty).

    ``sacrum_weight`` (per other label, 25 of them) is what is left for "the sacrum mask is really a
    vertebra"; ``weight`` is left for "this body is really the sacrum".
    """
    ev = np.ones((len(instances), K))
    for n, inst in enumerate(instances):
        if inst.kind == "sacrum":
            ev[n] = sacrum_weight
            ev[n, S1] = 1.0
        elif n != maybe_sacrum:
            ev[n, S1] = weight
    return ev


def edge_sacrum_candidate(ordered: Sequence[SpineInstance]) -> Optional[int]:
    """Index of the lowest piece if it may be the top of a sacrum the field of view cuts off: no
    sacrum instance among ``ordered``, and the lowest body is cut by the field of view's lower edge."""
    if len(ordered) < 2 or any(i.kind == "sacrum" for i in ordered):
        return None
    low = ordered[-1]
    return len(ordered) - 1 if low.kind == "body" and low.extra.get(CUT_BY_FIELD_OF_VIEW) else None


def edge_sacrum_network(net: np.ndarray, index: int) -> np.ndarray:
    """The network's evidence with the piece at ``index`` as likely S1 as L6.

    The level head learned the sacrum from generated cases only (the real training scans label
    L1-L5); the top of a real S1 cut by the field of view's edge looks to it like a vertebral body
    and it calls it L5 or L6, never S1. Between S1 and L6 the priors (six lumbar vertebrae are
    rare) decide; its evidence for every other level stays.
    """
    out = np.array(net, float, copy=True)
    out[index, S1] = max(out[index, S1], out[index, L6])
    return out


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
    edge = edge_sacrum_candidate(ordered) if anchors else None
    if net is not None:
        sources.append(net if edge is None else edge_sacrum_network(net, edge))
        used.append("network")
    if anchors:
        sources.append(sacrum_evidence(ordered, maybe_sacrum=edge))
        if any(i.kind == "sacrum" for i in ordered):
            used.append("sacrum")
        elif edge is not None:
            used.append(EDGE_SACRUM_SOURCE)
        dens = dens_evidence(ordered)
        if dens is not None:
            sources.append(dens)
            used.append("dens")
    return combine(*sources), used
