"""The working grid of the vertebra model: sagittal slices at a fixed spacing, axis-aligned.

Whatever the input's orientation (sagittal, coronal, oblique, 3-D isotropic), the model sees the
same thing: a stack of sagittal slices, axis 0 running right to left across slices, axis 1
anterior to posterior, axis 2 inferior to superior (LPS-aligned, so the direction matrix is the
identity), at ``WORK_SPACING`` millimetres. Predictions are resampled back onto the input's own
grid with the exact transform, so the segmentation written out overlays the input.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..io.volume import Volume

from .spec import MIN_INPLANE, SLICE_MULTIPLE, WORK_SPACING


@dataclass
class WorkingGrid:
    """Geometry of the working grid, enough to resample into and out of it."""

    origin_lps: tuple
    size: tuple  # (n_slices, n_ap, n_si)
    spacing: tuple = WORK_SPACING

    def reference(self) -> sitk.Image:
        ref = sitk.Image([int(s) for s in self.size], sitk.sitkFloat32)
        ref.SetOrigin(self.origin_lps)
        ref.SetSpacing(self.spacing)
        ref.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
        return ref


def working_grid_for(volume: Volume, spacing=WORK_SPACING) -> WorkingGrid:
    """The smallest axis-aligned grid covering ``volume``, in-plane sizes padded for the UNet."""
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in volume.shape])), float)
    lps = np.asarray(volume.origin_lps) + (corners * np.asarray(volume.spacing)) @ volume.direction_lps.T
    lo, hi = lps.min(0), lps.max(0)
    size = np.floor((hi - lo) / np.asarray(spacing)).astype(int) + 1
    size[1:] = np.maximum(np.ceil(size[1:] / SLICE_MULTIPLE).astype(int) * SLICE_MULTIPLE, MIN_INPLANE)
    extra = (size - 1) * np.asarray(spacing) - (hi - lo)  # centre the padding
    origin = lo - np.where(np.arange(3) > 0, extra / 2, 0)
    return WorkingGrid(tuple(origin.tolist()), tuple(int(s) for s in size), tuple(spacing))


def to_working_grid(volume: Volume, grid: WorkingGrid, interpolator=sitk.sitkLinear, default=0.0) -> np.ndarray:
    """Resample ``volume`` onto ``grid``; returns the array indexed [slice, ap, si]."""
    source = volume.to_sitk()
    out = sitk.Resample(source, grid.reference(), sitk.Transform(), interpolator, default, source.GetPixelID())
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def from_working_grid(array: np.ndarray, grid: WorkingGrid, reference: Volume, interpolator=sitk.sitkNearestNeighbor) -> Volume:
    """Resample a working-grid array back onto ``reference``'s exact geometry."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    img.SetOrigin(grid.origin_lps)
    img.SetSpacing(grid.spacing)
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    ref = reference.to_sitk()
    out = sitk.Resample(img, ref, sitk.Transform(), interpolator, 0, img.GetPixelID())
    return reference.with_array(sitk.GetArrayFromImage(out).transpose(2, 1, 0))


def normalise_intensity(array: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Robust 0-1 scaling (1st-99.5th percentile of the voxels inside the field of view).

    Sequences and scanners differ in absolute signal; percentiles make T1, T2 and STIR series
    from any vendor land in the same range without knowing which they are.
    """
    a = array.astype(np.float32)
    vals = a[mask] if mask is not None and mask.any() else a[a > 0] if (a > 0).any() else a.ravel()
    lo, hi = np.percentile(vals, [1.0, 99.5]) if vals.size else (0.0, 1.0)
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.5)


def study_on_grid(volume: Volume) -> tuple[WorkingGrid, np.ndarray, np.ndarray]:
    """``volume`` on its working grid, scaled 0-1, and the mask of grid voxels inside its field of view."""
    grid = working_grid_for(volume)
    image = to_working_grid(volume, grid)
    ones = volume.with_array(np.ones(volume.shape, np.float32))
    inside = to_working_grid(ones, grid, sitk.sitkNearestNeighbor) > 0
    return grid, normalise_intensity(image, inside), inside
