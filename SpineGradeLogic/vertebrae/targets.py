"""Training targets of the vertebra model, from SpineGrade label volumes.

Two heads share one UNet: a semantic head (``SEMANTIC``) and a vertebra-level head over
``LEVELS`` that says *which* vertebra a bony voxel belongs to. Real scans are labelled only in
part (the vb3 scans mark the L1-L5 bodies and nothing else), so a target voxel may also be
``IGNORE`` (no supervision) or ``NOT_BODY`` (known not to be a vertebral body, class unknown).
"""

from __future__ import annotations

import numpy as np

from ..names import DISC_OFFSET, LABEL_TO_VERTEBRA, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, SPINE_ORDER, VERTEBRA_LABELS

SEMANTIC = ("background", "vertebral_body", "posterior_elements", "disc", "sacrum", "spinal_canal", "spinal_cord")
BODY, POSTERIOR, DISC, SACRUM, CANAL, CORD = 1, 2, 3, 4, 5, 6
LEVELS = SPINE_ORDER  # C1 ... L6, S1
IGNORE = -1
NOT_BODY = -2

_SACRUM = VERTEBRA_LABELS["S1"]


def semantic_target(labels: np.ndarray) -> np.ndarray:
    """Semantic class per voxel of a fully labelled volume (generated cases)."""
    out = np.zeros(labels.shape, np.int64)
    vert = np.isin(labels, list(LABEL_TO_VERTEBRA))
    out[vert] = BODY
    out[labels == _SACRUM] = SACRUM
    out[(labels > POSTERIOR_OFFSET) & (labels <= POSTERIOR_OFFSET + 28)] = POSTERIOR
    out[(labels > DISC_OFFSET) & (labels <= DISC_OFFSET + 28)] = DISC
    out[labels == SPINAL_CANAL] = CANAL
    out[labels == SPINAL_CORD] = CORD
    return out


def level_target(labels: np.ndarray) -> np.ndarray:
    """Index into ``LEVELS`` for vertebral-body and sacrum voxels, ``IGNORE`` elsewhere."""
    out = np.full(labels.shape, IGNORE, np.int64)
    for value, name in LABEL_TO_VERTEBRA.items():
        out[labels == value] = LEVELS.index(name)
    return out


def bodies_only_targets(labels: np.ndarray, si_axis: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Targets for scans where only some vertebral bodies are labelled (vb3: L1-L5).

    Within the labelled bodies' superior-inferior extent an unlabelled voxel is known not to be a
    vertebral body; beyond it (T12, sacrum may be there, unlabelled) nothing is known.
    """
    semantic = np.full(labels.shape, IGNORE, np.int64)
    bodies = np.isin(labels, list(LABEL_TO_VERTEBRA))
    if bodies.any():
        along = np.moveaxis(bodies, si_axis, -1).any(axis=tuple(range(bodies.ndim - 1)))
        idx = np.flatnonzero(along)
        sl = [slice(None)] * labels.ndim
        sl[si_axis] = slice(idx[0], idx[-1] + 1)
        semantic[tuple(sl)] = NOT_BODY
        semantic[bodies] = BODY
    return semantic, level_target(labels)
