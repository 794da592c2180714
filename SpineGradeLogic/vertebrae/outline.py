"""Vertebral-body outlines redrawn at 1 mm, slice by slice: patch geometry (no torch here).

The vertebra network works on a 1.5 mm in-plane grid and its labels reach the input grid by nearest
neighbour, so on a fine scan each body's outline is a 1.5 mm staircase placed up to a working voxel
off (docs/vertebrae.md, "Where the body Dice is lost"). The outline model (`outline_model`) redraws
one body on one sagittal slice of the *input* grid: it sees a 64 x 64 mm patch at 1 mm around the
body (the image and the body's current mask) and answers the body's mask there.

Patches are taken in the patient's sagittal plane, whatever the array's axis order: rows run
anterior -> posterior, columns inferior -> superior (`SliceFrame`), so the model always sees the
spine the same way up. Grids whose slices are more than 25 degrees off sagittal are not redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np
from scipy import ndimage

from ..io.volume import Volume

PATCH = 64  # pixels per side
PATCH_MM = 1.0  # patch pixel size
MIN_SAGITTAL_COSINE = 0.9  # |cos| between the slice normal and patient left-right


@dataclass(frozen=True)
class SliceFrame:
    """Which array axis runs across the sagittal slices (``lr``) and which in-plane axes run
    anterior-posterior (``ap``) and inferior-superior (``si``), with the signs that turn each
    in-plane index direction into posterior (+) and superior (+), and their spacings in mm."""

    lr: int
    ap: int
    si: int
    ap_sign: float
    si_sign: float
    ap_mm: float
    si_mm: float


def sagittal_frame(volume: Volume) -> Optional[SliceFrame]:
    """The frame of ``volume``'s sagittal slices, or None where its slices are not sagittal enough."""
    d = np.asarray(volume.direction_ras)  # column j: array axis j in RAS
    lr = int(np.argmax(np.abs(d[0])))
    if abs(d[0, lr]) < MIN_SAGITTAL_COSINE:
        return None
    rest = [a for a in range(3) if a != lr]
    ap = max(rest, key=lambda a: abs(d[1, a]))
    si = rest[0] if rest[1] == ap else rest[1]
    # RAS y grows anterior, so posterior is minus; RAS z grows superior
    return SliceFrame(lr, ap, si, float(-np.sign(d[1, ap]) or 1.0), float(np.sign(d[2, si]) or 1.0),
                      float(volume.spacing[ap]), float(volume.spacing[si]))


def patch_coordinates(frame: SliceFrame, centre: Tuple[float, float], transform: Optional[np.ndarray] = None
                      ) -> np.ndarray:
    """In-plane coordinates [2, PATCH, PATCH] (indices along ``ap``, ``si``) of a patch centred at
    ``centre``; ``transform`` (2 x 2, mm -> mm) rotates or scales the patch (training augmentation),
    identity by default. Patch rows run posterior, columns superior."""
    offsets = (np.arange(PATCH) - (PATCH - 1) / 2.0) * PATCH_MM
    u, v = np.meshgrid(offsets, offsets, indexing="ij")  # u posterior, v superior (mm)
    if transform is not None:
        u, v = transform[0, 0] * u + transform[0, 1] * v, transform[1, 0] * u + transform[1, 1] * v
    return np.stack([centre[0] + frame.ap_sign * u / frame.ap_mm, centre[1] + frame.si_sign * v / frame.si_mm])


def sample(plane: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """A 2-D ``plane`` (axes ap, si) at ``coords`` (0 outside it), float32."""
    return ndimage.map_coordinates(np.asarray(plane, dtype=np.float32), coords, order=order, mode="constant",
                                   cval=0.0, prefilter=False).astype(np.float32)


def normalise_patch(image: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Patch intensities scaled so that the 1st and 99th percentiles inside the image are 0 and 1."""
    values = image[inside] if inside.any() else image.ravel()
    lo, hi = np.percentile(values, (1.0, 99.0))
    return np.clip((image - lo) / max(hi - lo, 1e-6), -0.5, 1.5).astype(np.float32)


def slice_mask(mask: np.ndarray, frame: SliceFrame, index: int) -> np.ndarray:
    """The 2-D in-plane array of ``mask`` on slice ``index``, axes (ap, si): a view, never a copy
    (``np.take`` across the last axis of a 512 x 512 x 15 study costs 10 ms a slice)."""
    idx = [slice(None)] * 3
    idx[frame.lr] = index
    plane = mask[tuple(idx)]
    return plane if frame.ap < frame.si else plane.T


def body_slices(mask: np.ndarray, frame: SliceFrame) -> Iterator[Tuple[int, Tuple[float, float]]]:
    """(slice index, in-plane centre) for every slice where the body ``mask`` has voxels; the centre
    is the centroid of its voxels on that slice (indices along ``ap``, ``si``)."""
    other = tuple(a for a in range(3) if a != frame.lr)
    present = np.flatnonzero(mask.any(axis=other))
    for s in present:
        ij = np.argwhere(slice_mask(mask, frame, int(s)))
        yield int(s), (float(ij[:, 0].mean()), float(ij[:, 1].mean()))


def paste_region(frame: SliceFrame, shape: Tuple[int, int, int], centre: Tuple[float, float]
                 ) -> Tuple[Tuple[slice, slice], np.ndarray]:
    """The in-plane box of the input slice that a patch centred at ``centre`` covers, and the patch
    coordinates [2, h, w] of every pixel in it (for resampling a patch answer back)."""
    half = (PATCH - 1) / 2.0 * PATCH_MM
    box = []
    for axis, c, mm in ((frame.ap, centre[0], frame.ap_mm), (frame.si, centre[1], frame.si_mm)):
        reach = half / mm
        box.append(slice(max(0, int(np.floor(c - reach))), min(shape[axis], int(np.ceil(c + reach)) + 1)))
    ii, jj = np.meshgrid(np.arange(box[0].start, box[0].stop), np.arange(box[1].start, box[1].stop), indexing="ij")
    pu = frame.ap_sign * (ii - centre[0]) * frame.ap_mm / PATCH_MM + (PATCH - 1) / 2.0
    pv = frame.si_sign * (jj - centre[1]) * frame.si_mm / PATCH_MM + (PATCH - 1) / 2.0
    return (box[0], box[1]), np.stack([pu, pv])


def plane_index(frame: SliceFrame, index: int, box: Tuple[slice, slice]) -> tuple:
    """The 3-D index of an in-plane box (along ap, si) on slice ``index``."""
    idx = [slice(None)] * 3
    idx[frame.lr] = index
    idx[frame.ap], idx[frame.si] = box
    return tuple(idx)


def plane_view(array: np.ndarray, frame: SliceFrame, index: int, box: Tuple[slice, slice]) -> np.ndarray:
    """``array`` on an in-plane box, axes (ap, si): a view, writable."""
    view = array[plane_index(frame, index, box)]
    return view if frame.ap < frame.si else view.T
