"""Acquisition plane and sagittal axis, decided from direction cosines only.

Never from file order or array shape: a sagittal series stored with its slices along the array's
first or last axis, or with oblique cosines, is recognised the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .volume import Volume

PLANES = ("sagittal", "coronal", "axial")  # slice normal mostly along R-L, A-P, S-I
ANISOTROPY = 1.3  # a through-plane spacing this much larger than in-plane marks a 2-D acquisition


@dataclass(frozen=True)
class PlaneInfo:
    plane: str  # "sagittal", "coronal", "axial" or "3d" (isotropic: any plane can be reformatted)
    normal_ras: Optional[tuple]  # unit slice normal in RAS, None for "3d"
    obliquity_deg: float  # angle between the slice normal and the nearest patient axis


def plane_of_normal(normal_ras) -> tuple[str, float]:
    """Name the plane whose normal is closest to ``normal_ras`` and the angle off it, in degrees."""
    n = np.abs(np.asarray(normal_ras, dtype=float))
    n = n / np.linalg.norm(n)
    axis = int(np.argmax(n))
    return PLANES[axis], float(np.degrees(np.arccos(np.clip(n[axis], -1.0, 1.0))))


def through_plane_axis(volume: Volume) -> Optional[int]:
    """The voxel axis across slices: the one with clearly the largest spacing, else None (3-D)."""
    spacing = np.asarray(volume.spacing)
    axis = int(np.argmax(spacing))
    others = np.delete(spacing, axis)
    return axis if spacing[axis] >= ANISOTROPY * others.max() else None


def acquisition_plane(volume: Volume, slice_normal_ras=None) -> PlaneInfo:
    """The plane the series was acquired in.

    ``slice_normal_ras`` (from DICOM's ImageOrientationPatient) decides when given; otherwise the
    thick-slice axis of an anisotropic volume does, and an isotropic volume counts as 3-D.
    """
    if slice_normal_ras is None:
        axis = through_plane_axis(volume)
        if axis is None:
            return PlaneInfo("3d", None, 0.0)
        slice_normal_ras = volume.direction_ras[:, axis]
    plane, angle = plane_of_normal(slice_normal_ras)
    n = np.asarray(slice_normal_ras, dtype=float)
    return PlaneInfo(plane, tuple((n / np.linalg.norm(n)).tolist()), angle)


def sagittal_axis(volume: Volume) -> int:
    """The voxel axis that runs most nearly left-right (across sagittal slices)."""
    return int(np.argmax(np.abs(volume.direction_ras[0, :])))


def orientation_code(volume: Volume) -> str:
    """ITK/DICOM three-letter code of the nearest orientation (e.g. ``"LPS"``)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(volume.direction_lps.ravel()))


def reorient(volume: Volume, code: str = "RAS") -> Volume:
    """Permute and flip axes (no resampling) to the nearest ``code`` orientation.

    ``code`` is the orientation code SimpleITK's ``DICOMOrient`` takes. Exact and invertible:
    ``reorient(reorient(v, "RAS"), orientation_code(v))`` has ``v``'s geometry again.
    """
    return Volume.from_sitk(sitk.DICOMOrient(volume.to_sitk(), code), **volume.meta)
