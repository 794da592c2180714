"""Small test volumes with realistic, oblique sagittal geometry."""

from __future__ import annotations

import numpy as np

from SpineGradeLogic.io.volume import Volume


def rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


# A sagittal acquisition in LPS: i runs anterior->posterior (+P), j superior->inferior (-S),
# k across slices left->right (-L), so that k = i x j as DICOM's slice normal (det = +1).
SAGITTAL_LPS = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def oblique_sagittal_volume(shape=(40, 48, 9), spacing=(0.8, 0.9, 4.0), tilt_deg=12.0, seed=0) -> Volume:
    """A thick-slice sagittal volume, tilted about two axes, with a structured pattern."""
    direction = rotation(1, tilt_deg) @ rotation(2, tilt_deg / 2) @ SAGITTAL_LPS
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    array = (100 + 50 * np.sin(i / 3.0) + 30 * np.cos(j / 5.0) + 10 * k + rng.normal(0, 1, shape)).astype(np.float32)
    return Volume(array, spacing, (-12.5, 30.25, 101.0), direction)


def axial_volume() -> Volume:
    """Thick axial slices: k runs inferior->superior."""
    array = np.random.default_rng(1).normal(100, 10, (32, 32, 8)).astype(np.float32)
    return Volume(array, (0.7, 0.7, 5.0), (0.0, 0.0, 0.0), np.eye(3))
