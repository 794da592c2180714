"""The body-outline model: its network and how it redraws the bodies of a label volume.

`redraw_bodies` takes the pipeline's label volume on the input grid and the input image, and for
every vertebral body on every sagittal slice where it has voxels asks the network for that body's
mask in a 1 mm patch (`outline`), then resamples the answers back onto the slice. A pixel goes to the
body whose answer there is highest if that answer exceeds one half; a body pixel that no answer
claims becomes background. Only background, body, disc and posterior-element pixels may change
(never the sacrum, the canal or the cord), so the names and every other structure stay as they were.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..io.volume import Volume
from ..names import DISC_OFFSET, POSTERIOR_OFFSET, VERTEBRA_LABELS
from .outline import (PATCH, body_slices, normalise_patch, paste_region, patch_coordinates, plane_view, sagittal_frame,
                      sample, slice_mask)

IN_CHANNELS = 2  # the image patch and the body's current mask
BODY_VALUES = tuple(sorted(v for k, v in VERTEBRA_LABELS.items() if k != "S1"))
NETWORK_KWARGS = {"spatial_dims": 2, "in_channels": IN_CHANNELS, "out_channels": 1,
                  "channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 1}
BATCH = 64
BODY_THRESHOLD = 0.5  # a pixel is body where the answer exceeds this


def build_network():
    """MONAI's UNet, 2-D, 64 x 64 patch -> one logit per pixel (about 0.5 M parameters)."""
    from monai.networks.nets import UNet

    return UNet(**NETWORK_KWARGS)


def _changeable(labels: np.ndarray) -> np.ndarray:
    """Pixels a redrawn outline may take or give up: background, bodies, discs, posterior elements."""
    body = np.isin(labels, BODY_VALUES)
    posterior = (labels > POSTERIOR_OFFSET) & (labels <= POSTERIOR_OFFSET + 28)
    disc = (labels > DISC_OFFSET) & (labels <= DISC_OFFSET + 28)
    return (labels == 0) | body | posterior | disc


def body_patch(image: np.ndarray, labels: np.ndarray, value: int, frame, index: int, centre, transform=None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """The network's input for one body on slice ``index`` ([2, PATCH, PATCH]: the image, scaled by
    its percentiles inside the scan, 0 outside it; the mask of body ``value`` in ``labels``) and the patch's in-plane coordinates."""
    coords = patch_coordinates(frame, centre, transform)
    img = sample(slice_mask(image, frame, index), coords)
    shape = np.array([image.shape[frame.ap], image.shape[frame.si]]).reshape(2, 1, 1)
    inside = np.all((coords >= 0) & (coords <= shape - 1), axis=0)  # where linear sampling has image on both sides
    x = np.stack([normalise_patch(img, inside) * inside, sample(slice_mask(labels, frame, index) == value, coords)])
    return x.astype(np.float32), coords


def predict_patches(network, patches: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Sigmoid answers [N, PATCH, PATCH] for input patches [N, 2, PATCH, PATCH]."""
    import torch

    out = np.empty((len(patches), PATCH, PATCH), np.float32)
    with torch.inference_mode():
        for i in range(0, len(patches), BATCH):
            x = torch.from_numpy(patches[i:i + BATCH]).to(device)
            out[i:i + BATCH] = torch.sigmoid(network(x)[:, 0]).float().cpu().numpy()
    return out


def redraw_bodies(segmentation: Volume, image: Volume, network, device: str = "cpu") -> Volume:
    """``segmentation`` with every vertebral body's outline redrawn by the outline network.

    Returns the same Volume where there is nothing to redraw (no body, or slices that are not
    sagittal). ``image`` must share ``segmentation``'s grid.
    """
    if not segmentation.same_geometry(image):
        raise ValueError("the label volume and the image must share one grid to redraw the body outlines")
    frame = sagittal_frame(segmentation)
    labels = np.asarray(segmentation.array)
    values = set(np.unique(labels).tolist()) if frame else set()
    present = [v for v in BODY_VALUES if v in values]
    if not present:
        return segmentation
    arr = np.asarray(image.array, dtype=np.float32)
    patches: List[np.ndarray] = []
    where: List[Tuple[int, int, Tuple[float, float]]] = []
    for value in present:
        for index, centre in body_slices(labels == value, frame):
            x, _ = body_patch(arr, labels, value, frame, index, centre)
            patches.append(x)
            where.append((value, index, centre))
    answers = predict_patches(network, np.stack(patches), device)
    return segmentation.with_array(paste_answers(labels, frame, where, answers))


def paste_answers(labels: np.ndarray, frame, where: Sequence[Tuple[int, int, Tuple[float, float]]],
                  answers: np.ndarray) -> np.ndarray:
    """The label array with each (body, slice, centre) patch answer resampled back and applied."""
    out = labels.copy()
    by_slice: Dict[int, List[int]] = {}
    for k, (_, index, _) in enumerate(where):
        by_slice.setdefault(index, []).append(k)
    for index, ks in by_slice.items():
        plane = plane_view(out, frame, index, (slice(None), slice(None)))
        best = np.zeros(plane.shape, np.float32)
        best_value = np.zeros(plane.shape, plane.dtype)
        touched = np.zeros(plane.shape, bool)
        for k in ks:
            value, _, centre = where[k]
            box, pcoords = paste_region(frame, labels.shape, centre)
            p = ndimage.map_coordinates(answers[k], pcoords, order=1, mode="constant", cval=0.0, prefilter=False)
            within = np.all((pcoords >= 0) & (pcoords <= PATCH - 1), axis=0)  # pixels the patch answered for
            sub_best, sub_value = best[box], best_value[box]
            higher = within & (p > sub_best)
            sub_best[higher] = p[higher]
            sub_value[higher] = value
            touched[box] |= within
        change = touched & _changeable(plane)
        claimed = change & (best > BODY_THRESHOLD)
        released = change & ~claimed & np.isin(plane, BODY_VALUES)
        plane[claimed] = best_value[claimed]
        plane[released] = 0
    return out
