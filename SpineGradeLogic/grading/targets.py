"""Grading labels as sets of allowed classes: one bitmask per head and crop.

Real datasets do not always give one class: RSNA 2024's "Normal/Mild" allows grades 0 and 1,
SPIDER's "narrowing present" allows 1-3, and a head a dataset does not grade allows every class.
Training and calibration use the set likelihood ``-log(sum of p[c] over the allowed classes)``,
which equals the ordinary negative log-likelihood for an exact label and is zero for an unknown
one, so one code path serves generated crops (always exact) and dataset crops alike.

Encoding: ``mask[n, j]`` has bit ``k`` set when class index ``k`` of head ``HEAD_NAMES[j]`` is
allowed (Pfirrmann grade 1 is index 0). An exact label has one bit; an unknown head has all of its
head's bits. Stored as int16 (at most 5 classes per head).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from ..names import HEAD_NAMES, HEADS
from .heads import n_classes

FULL_MASKS = np.array([(1 << n_classes(h)) - 1 for h in HEAD_NAMES], np.int16)


def masks_from_indices(indices: np.ndarray) -> np.ndarray:
    """Class indices ``[N, 13]`` (-1 = unknown) -> bitmasks ``[N, 13]``."""
    idx = np.asarray(indices, np.int64)
    if idx.ndim != 2 or idx.shape[1] != len(HEAD_NAMES):
        raise ValueError(f"class indices must be [N, {len(HEAD_NAMES)}], not {list(idx.shape)}")
    masks = np.left_shift(1, np.clip(idx, 0, None)).astype(np.int16)
    return np.where(idx < 0, FULL_MASKS[None, :], masks).astype(np.int16)


def indices_from_masks(masks: np.ndarray) -> np.ndarray:
    """Bitmasks -> class indices where exactly one class is allowed, else -1."""
    m = np.asarray(masks, np.int64)
    single = (m > 0) & ((m & (m - 1)) == 0)
    return np.where(single, np.round(np.log2(np.where(single, m, 1))).astype(np.int64), -1)


def mask_of_classes(head: str, classes: Iterable[int]) -> int:
    """Bitmask of the given class *values* of ``head`` (``(0, 1)`` -> 0b11; Pfirrmann 3 -> 0b100)."""
    values = HEADS[head]
    out = 0
    for c in classes:
        if c not in values:
            raise ValueError(f"{head}: {c} is not one of its classes {values[0]}-{values[-1]}")
        out |= 1 << values.index(c)
    return out


def mask_row(allowed: "dict[str, Sequence[int]]") -> np.ndarray:
    """One crop's bitmasks ``[13]`` from head -> allowed class values (missing heads: unknown)."""
    return np.array([mask_of_classes(h, allowed[h]) if h in allowed else FULL_MASKS[j]
                     for j, h in enumerate(HEAD_NAMES)], np.int16)


def known(masks: np.ndarray) -> np.ndarray:
    """True where a head is labelled at all (not every class allowed)."""
    return np.asarray(masks) != FULL_MASKS[None, :]


def bits(masks: torch.Tensor, head: str) -> torch.Tensor:
    """One head's column of bitmasks ``[B]`` -> boolean ``[B, K]`` of allowed classes (torch)."""
    k = torch.arange(n_classes(head), device=masks.device)
    return ((masks.long()[:, None] >> k[None, :]) & 1).bool()


def set_nll(logp: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``-log(sum of p over the allowed classes)`` per row: ``logp`` [B, K], ``allowed`` bool [B, K]."""
    return -torch.logsumexp(logp.masked_fill(~allowed, float("-inf")), dim=1)


def rsna_truth(masks: np.ndarray, head: str) -> np.ndarray:
    """A 0-3 stenosis head's truth on the RSNA 2024 scale, per crop: the exact grade, 0 where the
    label allows only grades within Normal/Mild (0 and 1), -1 where it says nothing RSNA can score."""
    col = np.asarray(masks)[:, HEAD_NAMES.index(head)].astype(np.int64)
    exact = indices_from_masks(np.asarray(masks))[:, HEAD_NAMES.index(head)]
    normal_mild = (col > 0) & ((col & ~0b11) == 0)
    return np.where(exact >= 0, exact, np.where(normal_mild, 0, -1))
