"""Vertebral-body instances: connected pieces of a body (or sacrum) mask, with their geometry in RAS.

An instance keeps its voxel indices and the geometry of the grid they index (the model's working
grid or the input's own), so centroids and boxes come out in RAS millimetres whatever the grid.
Two routes give the same structures: a network's masks (plus its per-voxel level probabilities)
and a ground-truth label map in VerSe numbering (for tests and evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..io.volume import Volume
from ..names import LABEL_TO_VERTEBRA, SPINE_ORDER, VERTEBRA_LABELS
from ..results.model import Box

MIN_BODY_MM3 = 300.0  # smaller pieces are noise (a C3 body is ~2 cm3, a lumbar one 30-50 cm3)
MIN_SPLIT_MM = 12.0  # halves of bodies fused across a missed disc lie at least this far apart
MIN_ATLAS_SPLIT_MM = 6.0  # C1 sits on C2 around the dens: its centroid lies closer to C2's than any disc gap
SPLIT_SHARE = 0.15  # a level holding less of a piece than this is the level head wavering
WAIST_SHARE = 0.2  # a cross-section under this share of the piece's typical one is a missed disc
WAIST_MIN_HEIGHT_MM = 30.0  # shorter pieces are one body (a lumbar body is 25-30 mm tall)
WAIST_BIN_MM = 1.5
WAIST_MIN_SIZE_RATIO = 1.5  # only a piece this much bigger than its neighbours can be two bodies
_C1 = SPINE_ORDER.index("C1")
LATERAL_MERGE_MM = 10.0  # pieces this close in the sagittal plane are parts of one body
_SACRUM = VERTEBRA_LABELS["S1"]


@dataclass
class SpineInstance:
    """One vertebral body (or the sacrum) found in a mask.

    Attributes:
        voxels: (N, 3) integer indices into ``grid``'s array.
        grid: the Volume whose geometry the indices refer to (its array is not used).
        kind: ``"body"`` or ``"sacrum"``.
        probabilities: evidence over ``SPINE_ORDER`` (sums to 1) or None when there is none.
        truth: the true name, for instances read from a ground-truth label map.
    """

    voxels: np.ndarray
    grid: Volume
    kind: str = "body"
    probabilities: Optional[np.ndarray] = None
    truth: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return int(len(self.voxels))

    @property
    def volume_mm3(self) -> float:
        return self.n_voxels * float(np.prod(self.grid.spacing))

    def points_ras(self) -> np.ndarray:
        """RAS millimetres of every voxel centre, (N, 3)."""
        return self.grid.index_to_ras(self.voxels)

    @property
    def centroid_mm(self) -> np.ndarray:
        """Centroid of the body in RAS mm (the mean of the voxel indices mapped once: exact and cheap)."""
        return self.grid.index_to_ras(self.voxels.mean(axis=0))

    @property
    def bbox_mm(self) -> Box:
        """Axis-aligned RAS box around the voxels, out to their outer faces."""
        lo, hi = self.voxels.min(0) - 0.5, self.voxels.max(0) + 0.5
        corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)])
        return Box.around(self.grid.index_to_ras(corners))


def _components(mask: np.ndarray, min_voxels: int) -> List[np.ndarray]:
    lab, n = ndimage.label(mask)  # face connectivity: bodies touching at a corner stay apart
    if n == 0:
        return []
    idx = np.argsort(lab.ravel(), kind="stable")
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    bounds = np.cumsum(counts)
    out = []
    for c in range(1, n + 1):
        if counts[c] >= min_voxels:
            flat = idx[bounds[c - 1] : bounds[c]]
            out.append(np.stack(np.unravel_index(flat, mask.shape), axis=1))
    return out


def mean_probabilities(voxels: np.ndarray, level_probs: np.ndarray) -> np.ndarray:
    """Mean of per-voxel level probabilities ``[C, i, j, k]`` over an instance's voxels, renormalised."""
    p = level_probs[(slice(None), *voxels.T)].astype(np.float64).mean(axis=1)
    s = p.sum()
    return p / s if s > 0 else np.full(len(p), 1.0 / len(p))


def _split_by_level(voxels: np.ndarray, level_probs: np.ndarray, min_voxels: int, shape,
                    spacing=(1.0, 1.0, 1.0)) -> List[np.ndarray]:
    """Split a component that the level head sees as two or more vertebrae (a missed disc).

    Bodies fused across a missed disc have halves a vertebra's height apart; pieces closer than
    ``MIN_SPLIT_MM`` are one body on which the level head wavers, and stay one. The atlas (C1) is
    the exception: it is an eighth of C2's size and wraps around C2's dens, so a C1 piece counts
    whatever its share and may lie ``MIN_ATLAS_SPLIT_MM`` from C2.
    """
    arg = level_probs[(slice(None), *voxels.T)].argmax(axis=0)
    levels, counts = np.unique(arg, return_counts=True)
    big = levels[(counts >= min_voxels) & ((counts >= SPLIT_SHARE * len(voxels)) | (levels == _C1))]
    if len(big) < 2:
        return [voxels]
    out, level_of = [], []
    for lv in big:
        sub = np.zeros(shape, bool)
        keep = voxels[arg == lv]
        sub[tuple(keep.T)] = True
        parts = _components(sub, min_voxels)
        out.extend(parts)
        level_of.extend([lv] * len(parts))
    if len(out) < 2:
        return [voxels]
    centres = np.array([o.mean(axis=0) * np.asarray(spacing) for o in out])
    atlas = np.array(level_of) == _C1
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    need = np.where(atlas[:, None] | atlas[None, :], MIN_ATLAS_SPLIT_MM, MIN_SPLIT_MM)
    iu = np.triu_indices(len(out), 1)
    if (gaps[iu] >= need[iu]).all():
        return out
    # an atlas piece that stands clear of the rest still comes apart (the rest stays as it was)
    if atlas.any() and not atlas.all():
        rest = ~atlas
        clear = all(gaps[i, j] >= MIN_ATLAS_SPLIT_MM for i in np.flatnonzero(atlas) for j in np.flatnonzero(rest))
        if clear:
            parts = [o for o, a in zip(out, atlas) if a]
            taken = np.zeros(shape, bool)
            for o in parts:
                taken[tuple(o.T)] = True
            return parts + [voxels[~taken[tuple(voxels.T)]]]
    return [voxels]


def _split_at_waist(voxels: np.ndarray, grid: Volume, min_voxels: int, depth: int = 0) -> List[np.ndarray]:
    """Cut a piece where its cross-section along the spine nearly vanishes: two bodies joined by a
    few voxels across a disc that the network missed (a collapsed or degenerate disc). Only asked
    of pieces much bigger than their neighbours (`_oversized`).

    The axis is the piece's long axis in the sagittal plane where that runs within 45 degrees of
    superior-inferior (two fused bodies are taller than deep), else superior-inferior. A cut needs
    a piece at least ``WAIST_MIN_HEIGHT_MM`` tall along it, a cross-section under ``WAIST_SHARE``
    of the piece's median one in its middle half, and both sides big enough to be bodies; each
    side is cut again where it has its own waist (three fused bodies).
    """
    if depth > 3 or len(voxels) < 2 * min_voxels:
        return [voxels]
    pts = grid.index_to_ras(voxels)
    sag = pts[:, 1:] - pts[:, 1:].mean(0)  # (A-P, S-I)
    _, vecs = np.linalg.eigh(sag.T @ sag)
    axis = vecs[:, -1] if abs(vecs[1, -1]) >= np.cos(np.pi / 4) else np.array([0.0, 1.0])
    h = sag @ axis
    lo, hi = h.min(), h.max()
    if hi - lo < WAIST_MIN_HEIGHT_MM:
        return [voxels]
    counts, edges = np.histogram(h, np.arange(lo, hi + WAIST_BIN_MM, WAIST_BIN_MM))
    n = len(counts)
    mid = np.arange(n // 4, max(n // 4 + 1, (3 * n) // 4))
    k = int(mid[np.argmin(counts[mid])])
    if counts[k] >= WAIST_SHARE * float(np.median(counts)):
        return [voxels]
    cut = 0.5 * (edges[k] + edges[k + 1])
    below, above = voxels[h < cut], voxels[h >= cut]
    if min(len(below), len(above)) < max(min_voxels, 0.25 * len(voxels)):
        return [voxels]
    return (_split_at_waist(below, grid, min_voxels, depth + 1) + _split_at_waist(above, grid, min_voxels, depth + 1))


def _oversized(pieces: List[np.ndarray], spacing, neighbours: int = 4) -> List[bool]:
    """Per piece: whether it holds at least ``WAIST_MIN_SIZE_RATIO`` times the median voxels of its
    nearest pieces. Two bodies fused into one are about twice their neighbours (bodies grow slowly
    along the spine, so the nearest pieces are the fair comparison, cervical or lumbar)."""
    if len(pieces) < 3:
        return [False] * len(pieces)
    centres = np.array([p.mean(axis=0) for p in pieces]) * np.asarray(spacing, float)
    sizes = np.array([len(p) for p in pieces], float)
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, : min(neighbours, len(pieces) - 1)]
    return list(sizes >= WAIST_MIN_SIZE_RATIO * np.median(sizes[near], axis=1))


def _merge_lateral_fragments(parts: List[np.ndarray], grid: Volume, atlas: Optional[Sequence[bool]] = None) -> List[np.ndarray]:
    """Join pieces that are one body seen apart across sagittal slices (thick slices, a thin bridge).

    Adjacent vertebrae are always a disc apart in the sagittal plane; pieces whose centroids lie
    within ``LATERAL_MERGE_MM`` of each other there, however far apart left-right, are one body.
    The atlas is the exception (it rings C2's dens): a piece the level head calls C1 (``atlas``)
    joins only other C1 pieces.
    """
    if len(parts) < 2:
        return parts
    atlas = np.zeros(len(parts), bool) if atlas is None else np.asarray(atlas, bool)
    centres = grid.index_to_ras(np.array([p.mean(axis=0) for p in parts]))[:, 1:]  # drop R-L: (A-P, S-I)
    group = list(range(len(parts)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    close = np.linalg.norm(centres[:, None] - centres[None], axis=-1) < LATERAL_MERGE_MM
    close &= atlas[:, None] == atlas[None, :]
    for i, j in zip(*np.nonzero(np.triu(close, 1))):
        group[root(j)] = root(i)
    merged: dict = {}
    for i, p in enumerate(parts):
        merged.setdefault(root(i), []).append(p)
    return [np.concatenate(v) for v in merged.values()]


def instances_from_masks(
    body: Volume,
    sacrum: Optional[Volume] = None,
    level_probs: Optional[np.ndarray] = None,
    min_volume_mm3: float = MIN_BODY_MM3,
) -> List[SpineInstance]:
    """Instances from a network's masks.

    Args:
        body: boolean (or 0/1) vertebral-body mask.
        sacrum: boolean sacrum mask on the same grid; its largest piece becomes one ``"sacrum"`` instance.
        level_probs: per-voxel probabilities over ``SPINE_ORDER``, shape ``(len(SPINE_ORDER), *body.shape)``;
            each instance gets their mean as its evidence, and a component holding two levels is split.
            A component much bigger than its neighbours with a waist along the spine is split there in
            any case (`_split_at_waist`).
        min_volume_mm3: pieces below this are dropped as noise.

    Returns:
        Unordered instances (see :func:`order_instances`).
    """
    if level_probs is not None and level_probs.shape != (len(SPINE_ORDER), *body.shape):
        raise ValueError(f"level_probs must be {(len(SPINE_ORDER), *body.shape)}, got {level_probs.shape}")
    min_vox = max(1, int(round(min_volume_mm3 / float(np.prod(body.spacing)))))
    out: List[SpineInstance] = []
    pieces: List[np.ndarray] = []
    for vox in _components(np.asarray(body.array) > 0, min_vox):
        pieces.extend(_split_by_level(vox, level_probs, min_vox, body.shape, body.spacing)
                      if level_probs is not None else [vox])
    pieces = [cut for part, big in zip(pieces, _oversized(pieces, body.spacing))
              for cut in (_split_at_waist(part, body, min_vox) if big else [part])]
    atlas = [level_probs is not None and int(mean_probabilities(p, level_probs).argmax()) == _C1 for p in pieces]
    for part in _merge_lateral_fragments(pieces, body, atlas):
        p = mean_probabilities(part, level_probs) if level_probs is not None else None
        out.append(SpineInstance(part, body, "body", p))
    if sacrum is not None:
        pieces = _components(np.asarray(sacrum.array) > 0, min_vox)
        if pieces:
            vox = max(pieces, key=len)
            p = mean_probabilities(vox, level_probs) if level_probs is not None else None
            out.append(SpineInstance(vox, sacrum, "sacrum", p))
    return out


def instances_from_label_map(labels: Volume, values: Optional[Sequence[int]] = None) -> List[SpineInstance]:
    """Ground-truth instances from a VerSe-numbered label map (one per vertebra value present).

    Only vertebra values (1-28) count: posterior elements (41-68), discs (101-128) and the canal
    are ignored, so centroids are those of the bodies. Each instance's ``truth`` is its name.
    """
    arr = np.asarray(labels.array)
    present = [int(v) for v in np.unique(arr) if int(v) in LABEL_TO_VERTEBRA]
    if values is not None:
        present = [v for v in present if v in set(values)]
    out = []
    for v in present:
        vox = np.argwhere(arr == v)
        out.append(SpineInstance(vox, labels, "sacrum" if v == _SACRUM else "body", None, LABEL_TO_VERTEBRA[v]))
    return out


def one_hot_evidence(name: str, smoothing: float = 0.0) -> np.ndarray:
    """Evidence vector for a known name (``smoothing`` spread over the other labels)."""
    k = len(SPINE_ORDER)
    p = np.full(k, smoothing / (k - 1) if k > 1 else 0.0)
    p[SPINE_ORDER.index(name)] = 1.0 - smoothing
    return p
