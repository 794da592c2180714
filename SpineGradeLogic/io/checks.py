"""Checks that turn unusable images into one clear error before any work is done."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import InputError
from .orientation import PlaneInfo
from .volume import Volume

#: Largest volume accepted, in voxels (2**27 = 134M voxels, 512 MiB as float32); a sagittal spine
#: series is rarely above 1024 x 1024 x 40 = 42M. Override with SPINEGRADE_MAX_VOXELS.
DEFAULT_MAX_VOXELS = 2**27
MIN_SLICES = 3


def max_voxels() -> int:
    try:
        return int(os.environ.get("SPINEGRADE_MAX_VOXELS", DEFAULT_MAX_VOXELS))
    except ValueError:
        raise InputError("SPINEGRADE_MAX_VOXELS must be a whole number of voxels") from None


def check_size(size: Sequence[int], name: str, components: int = 1) -> None:
    """Reject 2-D, 4-D, too-thin and too-large images from their header, before reading pixels."""
    size = [int(s) for s in size]
    if components > 1:
        raise InputError(f"{name}: a {components}-component (colour or vector) image; a grey-level MRI series is needed")
    if len(size) == 4 and size[3] > 1:
        raise InputError(f"{name}: a 4-D volume (shape {tuple(size)}); give one 3-D volume, e.g. one echo or time point")
    if len(size) == 4:
        size = size[:3]
    if len(size) < 3 or min(size) < MIN_SLICES:
        raise InputError(
            f"{name}: a 2-D image (shape {tuple(size)}); SpineGrade needs a 3-D series with at least {MIN_SLICES} slices"
        )
    if len(size) > 4:
        raise InputError(f"{name}: a {len(size)}-D image; a 3-D volume is needed")
    total = int(np.prod(size, dtype=np.int64))
    if total > max_voxels():
        raise InputError(
            f"{name}: volume of {total:,} voxels (shape {tuple(size)}) exceeds the limit of {max_voxels():,}; "
            "crop or downsample it, or raise SPINEGRADE_MAX_VOXELS"
        )


def check_values(volume: Volume, name: str) -> None:
    """Reject NaN or infinite voxels, and images with no contrast at all."""
    a = volume.array
    if np.issubdtype(a.dtype, np.floating):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise InputError(f"{name}: {bad:,} voxels are NaN or infinite; the image is corrupt or was saved wrongly")
    if a.size and float(a.max()) == float(a.min()):
        raise InputError(f"{name}: every voxel has the same value ({float(a.min())}); there is no image to read")


def check_plane(plane: PlaneInfo, name: str) -> None:
    """Reject axial-only input: the models read the spine on sagittal slices."""
    if plane.plane == "axial":
        raise InputError(
            f"{name}: an axial series (slices across the spine); SpineGrade needs a sagittal series "
            "(or a 3-D isotropic one) of the spine"
        )


def check_nifti_file(path) -> None:
    """What ITK hides in a NIfTI: it zero-fills truncated data and reads NaN as 0, without a word.

    Compares the bytes there with the header's, and scans floating-point data for NaN/infinity.
    """
    import gzip
    import zlib

    import nibabel as nib

    name = str(path)
    try:
        header = nib.load(name).header
    except Exception as e:
        raise InputError(f"{name}: not a readable NIfTI image ({e})") from None
    expected = int(header["vox_offset"]) + int(np.prod(header.get_data_shape(), dtype=np.int64)) * int(header["bitpix"]) // 8
    if name.lower().endswith(".gz"):
        have = 0
        try:
            with gzip.open(name, "rb") as f:
                while chunk := f.read(1 << 22):
                    have += len(chunk)
        except (EOFError, OSError, zlib.error):
            raise InputError(f"{name}: corrupt or truncated image data (the compressed stream ends early)") from None
    else:
        have = os.path.getsize(name)
    if have < expected:
        raise InputError(f"{name}: corrupt or truncated image data ({have:,} of {expected:,} bytes)")
    if np.issubdtype(header.get_data_dtype(), np.floating):
        data = np.asanyarray(nib.load(name).dataobj)
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise InputError(f"{name}: {bad:,} voxels are NaN or infinite; the image is corrupt or was saved wrongly")
