"""Training patches for the body-outline model: a scan, the pipeline's labels on it, and its reference.

A training case is an image on its own grid, the label volume the pipeline wrote for it (the
outline model learns to correct exactly that) and the reference body labels. Each of the pipeline's
bodies is matched to the reference body it overlaps most (a body the reference does not label, such
as T12 on a scan labelled L1-L5, is left out: nothing would say where its outline is). A sample is
one body on one slice where the pipeline's mask has it, as at inference; its target is the matched
reference body's mask in the same patch. Augmentation: in-plane rotation and scale, a shifted
centre, the input mask eroded or dilated by a pixel or two, and a gamma change of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..io.volume import Volume
from .outline import PATCH, SliceFrame, body_slices, sagittal_frame, sample, slice_mask
from .outline_model import BODY_VALUES, body_patch

MIN_MATCH_SHARE = 0.3  # a pipeline body is matched only if this share of it lies in one reference body
ROTATION_DEG = 12.0
SCALE = 0.1
SHIFT_MM = 3.0


@dataclass
class OutlineCase:
    name: str
    image: np.ndarray  # float32, the scan's own grid
    labels: np.ndarray  # the pipeline's label volume on that grid
    truth: np.ndarray  # reference labels on that grid
    frame: SliceFrame
    pairs: List[Tuple[int, int]] = field(default_factory=list)  # (pipeline body value, reference value)
    kind: str = "real"  # "real" or "generated"


def match_bodies(labels: np.ndarray, truth: np.ndarray, truth_values: Sequence[int]) -> List[Tuple[int, int]]:
    """(pipeline value, reference value) for each pipeline body that mostly lies in one labelled body."""
    pairs = []
    for v in BODY_VALUES:
        inside = truth[labels == v]
        if inside.size == 0:
            continue
        counts = np.bincount(inside.astype(np.int64), minlength=max(truth_values) + 1)
        counts[[c for c in range(len(counts)) if c not in truth_values]] = 0
        best = int(np.argmax(counts))
        if counts[best] >= MIN_MATCH_SHARE * inside.size:
            pairs.append((v, best))
    return pairs


def make_case(name: str, image: Volume, labels: np.ndarray, truth: np.ndarray,
              truth_values: Sequence[int]) -> Optional[OutlineCase]:
    """An `OutlineCase`, or None where the grid is not sagittal or no body matches."""
    frame = sagittal_frame(image)
    if frame is None:
        return None
    pairs = match_bodies(labels, truth, truth_values)
    if not pairs:
        return None
    return OutlineCase(name, np.asarray(image.array, np.float32), np.asarray(labels), np.asarray(truth), frame, pairs)


def samples_of(cases: Sequence[OutlineCase]) -> List[Tuple[int, int, int, int, Tuple[float, float]]]:
    """(case, pipeline value, reference value, slice, centre) for every body on every slice it has."""
    out = []
    for c, case in enumerate(cases):
        for v, t in case.pairs:
            for index, centre in body_slices(case.labels == v, case.frame):
                out.append((c, v, t, index, centre))
    return out


def sample_weights(cases: Sequence[OutlineCase], samples: Sequence[tuple], real_share: Optional[float]) -> np.ndarray:
    """Drawing probabilities: ``real_share`` of the draws from real cases' samples, the rest from
    generated ones (each side uniform); uniform over all samples when ``real_share`` is None or one
    side has none."""
    real = np.array([cases[s[0]].kind == "real" for s in samples])
    if real_share is None or real.all() or not real.any():
        return np.full(len(samples), 1.0 / len(samples))
    return np.where(real, real_share / real.sum(), (1.0 - real_share) / (~real).sum())


def _perturbed(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    binary = mask > 0.5
    if r < 0.2:
        return ndimage.binary_erosion(binary, iterations=int(rng.integers(1, 3))).astype(np.float32)
    if r < 0.4:
        return ndimage.binary_dilation(binary, iterations=int(rng.integers(1, 3))).astype(np.float32)
    return mask


def make_batch(cases: Sequence[OutlineCase], samples: Sequence[tuple], picks: Sequence[int],
               rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Inputs [N, 2, P, P] and targets [N, 1, P, P] for the picked samples; augmented when ``rng``."""
    xs = np.empty((len(picks), 2, PATCH, PATCH), np.float32)
    ys = np.empty((len(picks), 1, PATCH, PATCH), np.float32)
    for n, k in enumerate(picks):
        c, v, t, index, centre = samples[k]
        case = cases[c]
        transform = None
        if rng is not None:
            a = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
            s = rng.uniform(1 - SCALE, 1 + SCALE)
            transform = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 2)
            centre = (centre[0] + shift[0] / case.frame.ap_mm, centre[1] + shift[1] / case.frame.si_mm)
        x, coords = body_patch(case.image, case.labels, v, case.frame, index, centre, transform)
        if rng is not None:
            x[1] = _perturbed(x[1], rng)
            x[0] = np.sign(x[0]) * np.abs(x[0]) ** rng.uniform(0.7, 1.4)
        xs[n] = x
        ys[n, 0] = sample(slice_mask(case.truth, case.frame, index) == t, coords)
    return xs, ys
