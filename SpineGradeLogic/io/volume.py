"""`Volume`: a voxel array with its exact physical geometry.

SpineGrade keeps images as SimpleITK does: the array is indexed ``[i, j, k]`` (ITK's x, y, z
index order) and the geometry is ITK's origin, spacing and direction in LPS. Everything a user
sees is in RAS millimetres (3D Slicer's and nibabel's frame): ``affine`` maps a voxel index to
RAS. Keeping ITK's geometry untouched is what lets every output overlay its input voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Tuple

import numpy as np

if TYPE_CHECKING:  # SimpleITK is imported where images are converted, so model code runs without it
    import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    """A 3-D image: ``array[i, j, k]`` plus ITK geometry (origin/direction in LPS, spacing in mm)."""

    array: np.ndarray
    spacing: Tuple[float, float, float]
    origin_lps: Tuple[float, float, float]
    direction_lps: np.ndarray  # 3x3, columns are the i, j, k axes' unit vectors
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin_lps = tuple(float(o) for o in self.origin_lps)
        self.direction_lps = np.asarray(self.direction_lps, dtype=float).reshape(3, 3)

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape[:3])

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix from voxel index ``(i, j, k, 1)`` to RAS millimetres."""
        a = np.eye(4)
        a[:3, :3] = LPS_TO_RAS @ self.direction_lps @ np.diag(self.spacing)
        a[:3, 3] = LPS_TO_RAS @ np.asarray(self.origin_lps)
        return a

    @property
    def direction_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.direction_lps

    def index_to_ras(self, ijk) -> np.ndarray:
        """Voxel indices (N x 3 or 3) to RAS millimetres."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def ras_to_index(self, ras) -> np.ndarray:
        """RAS millimetres (N x 3 or 3) to continuous voxel indices."""
        ras = np.asarray(ras, dtype=float)
        inv = np.linalg.inv(self.affine)
        return ras @ inv[:3, :3].T + inv[:3, 3]

    def same_geometry(self, other: "Volume", tol: float = 1e-4) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin_lps, other.origin_lps, atol=tol)
            and np.allclose(self.direction_lps, other.direction_lps, atol=tol)
        )

    def with_array(self, array: np.ndarray, **meta: Any) -> "Volume":
        """A volume of the same geometry holding another array (a label map, a heatmap)."""
        if tuple(array.shape[:3]) != self.shape:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.shape}")
        return Volume(array, self.spacing, self.origin_lps, self.direction_lps.copy(), dict(meta))

    # --- SimpleITK bridge -----------------------------------------------------------------
    @classmethod
    def from_sitk(cls, image: "sitk.Image", **meta: Any) -> "Volume":
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3-D image, got {image.GetDimension()}-D")
        array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
        return cls(
            np.ascontiguousarray(array),
            image.GetSpacing(),
            image.GetOrigin(),
            np.array(image.GetDirection()).reshape(3, 3),
            dict(meta),
        )

    def to_sitk(self) -> "sitk.Image":
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array.transpose(2, 1, 0)))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin_lps)
        image.SetDirection(tuple(self.direction_lps.ravel()))
        return image
