"""Standardised disc-centred crops, and saliency maps from a crop back onto the input's grid.

The crop is the input resampled (linear) on a grid in the disc's own frame:

======  ==========================  =====  =======  =======================================
axis    direction (unit, RAS)       size   spacing  covers
======  ==========================  =====  =======  =======================================
0       patient left (L-R)          24     2.0 mm   48 mm: canal, lateral recesses, foramina
1       posterior (A-P, in the      80     1.0 mm   80 mm: 32 mm in front of the disc centre
        mid-sagittal plane)                         to 48 mm behind it (canal, facets)
2       superior (the disc normal)  64     1.0 mm   64 mm: the disc, both endplates and
                                                    about 25 mm of each adjacent body
======  ==========================  =====  =======  =======================================

Axis order (L, P, S) is LPS's own, so the crop is an ordinary right-handed sagittal stack whose
direction matrix is the disc frame. The disc centre sits at continuous index
``(size - 1) / 2 - offset / spacing`` = (11.5, 31.5, 31.5). Each crop carries its exact geometry as a
:class:`Volume`, so a heatmap computed on it maps back into the input with SimpleITK and the
identity transform between the two physical spaces (no approximations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..io.volume import LPS_TO_RAS, Volume
from .localise import DiscLocation


@dataclass(frozen=True)
class CropSpec:
    """Size, spacing and offset of the disc crop (see the module's table)."""

    size: tuple = (24, 80, 64)
    spacing: tuple = (2.0, 1.0, 1.0)
    offset_mm: tuple = (0.0, 8.0, 0.0)  # crop centre relative to the disc centre, in the disc frame

    @property
    def center_index(self) -> np.ndarray:
        """Continuous crop index of the disc centre."""
        return (np.asarray(self.size) - 1) / 2 - np.asarray(self.offset_mm) / np.asarray(self.spacing)


DEFAULT_CROP = CropSpec()


@dataclass
class DiscCrop:
    """A disc-centred crop: the image on the crop grid plus what the grader needs to know about it.

    Attributes:
        level: the disc level.
        image: the crop as a Volume (array [L, P, S] float32 and its exact geometry in the disc frame).
        outside_fraction: share of crop voxels outside the input's field of view (padded with 0).
        inside: boolean mask of the crop voxels inside the input's field of view.
    """

    level: str
    image: Volume
    outside_fraction: float
    inside: np.ndarray

    @property
    def affine(self) -> np.ndarray:
        """4x4 crop index -> RAS."""
        return self.image.affine


def crop_geometry(location: DiscLocation, spec: CropSpec = DEFAULT_CROP) -> Volume:
    """An empty Volume with the crop's geometry for a disc (array of zeros)."""
    frame = np.asarray(location.frame, float)  # columns L, P, S in RAS
    spacing = np.asarray(spec.spacing, float)
    origin_ras = np.asarray(location.center_mm, float) - frame @ (spec.center_index * spacing)
    direction_lps = LPS_TO_RAS @ frame  # RAS -> LPS is the same diagonal flip
    return Volume(np.zeros(spec.size, np.float32), tuple(spacing), tuple(LPS_TO_RAS @ origin_ras), direction_lps)


def _empty_image(geometry: Volume) -> sitk.Image:
    """A float32 SimpleITK image with ``geometry``'s grid, to resample onto (its array is not copied)."""
    image = sitk.Image([int(n) for n in geometry.shape], sitk.sitkFloat32)
    image.SetSpacing(tuple(float(x) for x in geometry.spacing))
    image.SetOrigin(tuple(float(x) for x in geometry.origin_lps))
    image.SetDirection(tuple(geometry.direction_lps.ravel()))
    return image


def _inside(reference: Volume, geometry: Volume) -> np.ndarray:
    """Crop voxels whose centre falls within the input's voxel extent (ITK's [-0.5, n - 0.5])."""
    # crop index -> input index is affine: its columns step along the crop's axes, so each axis'
    # contribution is computed once and broadcast (not once per voxel)
    m = np.linalg.inv(reference.affine) @ geometry.affine
    idx = m[:3, 3].copy()
    for axis, n in enumerate(geometry.shape):
        shape = [1, 1, 1, 3]
        shape[axis] = n
        idx = idx + (np.arange(n)[:, None] * m[:3, axis]).reshape(shape)
    return np.all((idx >= -0.5) & (idx <= np.asarray(reference.shape) - 0.5), axis=-1)


class CropSampler:
    """Disc crops of one volume: it is handed to SimpleITK once, however many levels are cut from it."""

    def __init__(self, volume: Volume):
        self.volume = volume
        self._source = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)

    def crop(self, location: DiscLocation, spec: CropSpec = DEFAULT_CROP) -> DiscCrop:
        """The volume resampled onto ``location``'s crop grid (see :func:`extract_crop`)."""
        geom = crop_geometry(location, spec)
        out = sitk.Resample(self._source, _empty_image(geom), sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        image = Volume.from_sitk(out, level=location.level)
        inside = _inside(self.volume, geom)
        return DiscCrop(location.level, image, float(1.0 - inside.mean()), inside)


class StackSampler:
    """Disc crops of a series read as several stacks (an axial block angled through each disc): each
    level is cut from the stack that covers the most of its crop."""

    def __init__(self, volumes):
        if not volumes:
            raise ValueError("StackSampler needs at least one volume")
        self.samplers = [CropSampler(v) for v in volumes]

    def crop(self, location: DiscLocation, spec: CropSpec = DEFAULT_CROP) -> DiscCrop:
        crops = [s.crop(location, spec) for s in self.samplers]
        return min(crops, key=lambda c: c.outside_fraction)  # the first of equals: the largest stack


def extract_crop(volume: Volume, location: DiscLocation, spec: CropSpec = DEFAULT_CROP) -> DiscCrop:
    """Resample ``volume`` onto the disc's crop grid (linear; outside the field of view -> 0).

    A crop partly outside the field of view is still returned; ``outside_fraction`` tells the
    grader how much is padding, so it can warn or skip. To cut several levels from one volume, use a
    :class:`CropSampler`.
    """
    return CropSampler(volume).crop(location, spec)


def heatmap_to_input(heatmap: np.ndarray, crop: DiscCrop, reference: Volume, interpolator=sitk.sitkLinear) -> Volume:
    """A map computed on a crop (same shape as ``crop.image``) resampled into ``reference``'s geometry.

    Voxels of ``reference`` outside the crop get 0. The transform is exact: both grids are placed in
    the same physical space, SimpleITK resamples with the identity transform between them.
    """
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.shape != crop.image.shape:
        raise ValueError(f"heatmap shape {heatmap.shape} does not match the crop {crop.image.shape}")
    src = crop.image.with_array(heatmap).to_sitk()
    out = sitk.Resample(src, _empty_image(reference), sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
    return Volume.from_sitk(out, level=crop.level)
