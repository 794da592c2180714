"""Prepared grading crops: intensity normalisation, the npz cache, GPU-side augmentation, batches.

Kept free of SimpleITK (and of the phantom) so that training runs where only torch, numpy and MONAI
are installed, from caches prepared elsewhere (``grading/prepare.py`` makes them).

Cache files: one ``grading-<profile>-<seed>.npz`` per generated case, holding

=============  ==================  ==========================================================
key            dtype / shape        what
=============  ==================  ==========================================================
image          uint8 [n, 24,80,64]  normalised crop x ``IMAGE_SCALE`` (6 bits: 0-1.5 in 1/42 steps)
grades         int8 [n, 13]         ground-truth grade (class value) per head, ``HEAD_NAMES`` order;
                                   -1 where the label is a set of classes or unknown
allowed        int16 [n, 13]        allowed classes per head as bitmasks (``grading/targets.py``);
                                   absent in generator caches (exact grades: derived from ``grades``)
axial          uint8 [n, 24,80,64]  the study's axial T2 resampled onto the same crop grid, stored like
                                   ``image``; ``NO_AXIAL`` (255) where the axial stack does not reach
                                   (or the study has none; absent in older caches: all 255)
level          str [n]              disc level
outside        float32 [n]          share of the crop outside the field of view
case           int64 [n]            generator seed
contrast       str [n]              T1 / T2 / STIR / random
measures       float32 [n, 12]      the generator's measurements behind the grades, scaled
                                   (``grading/measures.py``); NaN where unknown (dataset crops;
                                   absent in older caches: all NaN)
=============  ==================  ==========================================================

6-bit storage keeps a crop near 45 kB compressed (8 bits: about 70 kB) so that a few thousand crops
travel to a training machine; training adds uniform dither of one step so the network never learns
the quantisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from ..names import HEAD_NAMES
from .heads import grade_indices, mirror_permutation, n_classes
from .measures import MEASURE_NAMES, empty_measures, mirror_measure_permutation
from .network import CROP_SHAPE
from .targets import indices_from_masks, masks_from_indices

IMAGE_SCALE = 42.0  # normalised intensity 0-1.5 stored as 0-63
CLIP = 1.5
CROP_SPACING = (2.0, 1.0, 1.0)
NO_AXIAL = 255  # axial crop voxel with no axial slice behind it
MIN_AXIAL_INSIDE = 0.25  # an axial crop less covered than this is treated as absent
#: The network's input channels, in order: a one-channel model reads the sagittal crop only.
INPUT_CHANNELS = ("sagittal", "axial_t2", "axial_t2_present")


def normalise_crop(array: np.ndarray, inside: Optional[np.ndarray] = None) -> np.ndarray:
    """Crop intensities divided by their 99th percentile (inside the field of view), clipped to [0, 1.5].

    Per crop, so that every sequence and scanner gain lands on one scale while the contrast between
    nucleus, annulus, CSF, fat and marrow (what the grades depend on) is kept.
    """
    a = np.nan_to_num(np.asarray(array, np.float32))
    vals = a[inside] if inside is not None and inside.any() else a[a > 0]
    ref = float(np.percentile(vals, 99)) if vals.size else 0.0
    if ref <= 0:
        return np.zeros_like(a)
    return np.clip(a / ref, 0.0, CLIP).astype(np.float32)


def quantise_crop(normalised: np.ndarray) -> np.ndarray:
    """A normalised crop (0-1.5) as stored in the cache: uint8 in steps of 1 / ``IMAGE_SCALE``."""
    return np.clip(np.round(np.asarray(normalised) * IMAGE_SCALE), 0, 255).astype(np.uint8)


def axial_input(crop) -> tuple:
    """``(values, present)`` of an axial series' crop (a :class:`DiscCrop` cut from the axial volume
    on the sagittal crop's grid): normalised intensities (0 where absent) and where the axial stack
    has slices; nothing present when less than ``MIN_AXIAL_INSIDE`` of the crop is covered."""
    inside = np.asarray(crop.inside, bool)
    if inside.mean() < MIN_AXIAL_INSIDE:
        return np.zeros(inside.shape, np.float32), np.zeros(inside.shape, bool)
    return normalise_crop(crop.image.array, inside) * inside, inside


def axial_channel(crop) -> np.ndarray:
    """The stored form of :func:`axial_input`: quantised like ``image``, ``NO_AXIAL`` where absent."""
    values, present = axial_input(crop)
    q = np.minimum(quantise_crop(values), NO_AXIAL - 1)
    q[~present] = NO_AXIAL
    return q


def network_input(image: torch.Tensor, axial: Optional[torch.Tensor], channels: int) -> torch.Tensor:
    """Stored crops (uint8 ``[B, L, P, S]``; ``axial`` the same or None) -> float ``[B, channels, ...]``.

    Channel 0 the sagittal crop (0-1.5); with three channels also the axial crop (0 where absent)
    and the axial presence mask (1 where the axial stack has a slice behind the voxel).
    """
    x = image.float()[:, None] / IMAGE_SCALE
    if channels == 1:
        return x
    if channels != len(INPUT_CHANNELS):
        raise ValueError(f"a grading network takes 1 or {len(INPUT_CHANNELS)} input channels, not {channels}")
    if axial is None:
        return torch.cat([x, torch.zeros_like(x), torch.zeros_like(x)], 1)
    present = (axial != NO_AXIAL)[:, None]
    ax = torch.where(present, axial.float()[:, None] / IMAGE_SCALE, torch.zeros_like(x))
    return torch.cat([x, ax, present.float()], 1)


@dataclass
class CropSet:
    """Crops and their ground truth, in memory (uint8 images as stored; see :meth:`images`)."""

    image: np.ndarray  # uint8 [N, 24, 80, 64]
    grades: np.ndarray  # int [N, 13] class values
    level: np.ndarray
    outside: np.ndarray
    case: np.ndarray
    contrast: np.ndarray
    allowed: Optional[np.ndarray] = None  # int16 [N, 13] bitmasks; None: exact grades, derived from ``grades``
    axial: Optional[np.ndarray] = None  # uint8 like ``image``, NO_AXIAL where absent; None: no axial at all
    measures: Optional[np.ndarray] = None  # float32 [N, 12] (``measures.MEASURE_NAMES``); None: all NaN

    FIELDS = ("image", "grades", "level", "outside", "case", "contrast", "allowed", "axial", "measures")

    def __post_init__(self) -> None:
        if self.axial is None:
            self.axial = np.full(self.image.shape, NO_AXIAL, np.uint8)
        if self.axial.shape != self.image.shape:
            raise DatasetError(f"axial crops {self.axial.shape} do not match the sagittal crops {self.image.shape}")
        if self.allowed is None:
            self.allowed = masks_from_indices(grade_indices(self.grades)) if len(self.grades) else \
                np.zeros((0, len(HEAD_NAMES)), np.int16)
        self.allowed = np.asarray(self.allowed, np.int16)
        self.measures = empty_measures(len(self)) if self.measures is None else np.asarray(self.measures, np.float32)
        if self.measures.shape != (len(self), len(MEASURE_NAMES)):
            raise DatasetError(f"measurements {self.measures.shape} do not match {len(self)} crops x {len(MEASURE_NAMES)}")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def targets(self) -> np.ndarray:
        """Class indices ``[N, 13]`` (Pfirrmann 1-5 -> 0-4); -1 where the label is not one class."""
        return indices_from_masks(self.allowed)

    def images(self, idx=slice(None)) -> np.ndarray:
        return self.image[idx].astype(np.float32) / IMAGE_SCALE

    @property
    def has_axial(self) -> np.ndarray:
        """bool [N]: crops with axial T2 voxels."""
        return (self.axial != NO_AXIAL).reshape(len(self), -1).any(1) if len(self) else np.zeros(0, bool)

    def without_axial(self) -> "CropSet":
        """The same crops as if the studies held no axial series."""
        return replace(self, axial=None)

    def subset(self, mask) -> "CropSet":
        return CropSet(*(getattr(self, f)[mask] for f in self.FIELDS))

    def save(self, path: Path, **extra) -> None:
        """Write the npz atomically; ``extra`` scalars (a dataset study's id, patient, subset) go with it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, image=self.image.astype(np.uint8), grades=self.grades.astype(np.int8),
                            level=self.level.astype(str), outside=self.outside.astype(np.float32),
                            case=self.case.astype(np.int64), contrast=self.contrast.astype(str),
                            allowed=self.allowed.astype(np.int16), axial=self.axial.astype(np.uint8),
                            measures=self.measures.astype(np.float32),
                            **{k: np.asarray(str(v)) for k, v in extra.items()})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "CropSet":
        try:
            d = np.load(path)
            allowed = d["allowed"] if "allowed" in d.files else None
            axial = d["axial"] if "axial" in d.files else None
            measures = d["measures"] if "measures" in d.files else None
            return cls(d["image"], d["grades"].astype(np.int64), d["level"], d["outside"], d["case"], d["contrast"], allowed,
                       axial, measures)
        except Exception as e:  # a truncated or foreign file: name it
            raise DatasetError(f"{path}: not a grading crop cache ({e})") from e

    @classmethod
    def concat(cls, sets: Sequence["CropSet"]) -> "CropSet":
        if not sets:
            return cls.empty()
        return cls(*(np.concatenate([getattr(s, f) for s in sets]) for f in cls.FIELDS))

    @classmethod
    def empty(cls) -> "CropSet":
        return cls(np.zeros((0, *CROP_SHAPE), np.uint8), np.zeros((0, len(HEAD_NAMES)), np.int64), np.zeros(0, str),
                   np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, str), np.zeros((0, len(HEAD_NAMES)), np.int16),
                   np.zeros((0, *CROP_SHAPE), np.uint8))


def cache_name(profile: str, seed: int) -> str:
    return f"grading-{profile}-{int(seed)}.npz"


def load_prepared(folders: Sequence[Path], profile: Optional[str] = None) -> CropSet:
    """Every ``grading-<profile>-<seed>.npz`` in ``folders`` (all profiles when ``profile`` is None).

    The crops are copied into arrays allocated once for all files: concatenating the per-file
    arrays would hold every crop twice at the peak (about 250 kB a crop with its axial channel, so
    12 GB for 6,000 generated cases, 24 GB at the peak).
    """
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a folder")
        pattern = f"grading-{profile}-*.npz" if profile else "grading-*.npz"
        files.extend(f for f in sorted(folder.glob(pattern)) if not f.name.endswith(".tmp.npz"))
    if not files:
        return CropSet.empty()
    total = sum(_count_crops(f) for f in files)
    image = np.empty((total, *CROP_SHAPE), np.uint8)
    axial = np.empty((total, *CROP_SHAPE), np.uint8)
    small = {f: [] for f in CropSet.FIELDS if f not in ("image", "axial")}
    i = 0
    for f in files:
        part = CropSet.load(f)
        n = len(part)
        if i + n > total or part.image.shape[1:] != CROP_SHAPE:
            raise DatasetError(f"{f}: changed while it was read, or holds crops of shape {part.image.shape[1:]}")
        image[i:i + n], axial[i:i + n] = part.image, part.axial
        for k, v in small.items():
            v.append(getattr(part, k))
        i += n
    return CropSet(image=image[:i], axial=axial[:i], **{k: np.concatenate(v) for k, v in small.items()})


def _count_crops(path: Path) -> int:
    try:
        with np.load(path) as d:
            return int(d["case"].shape[0])
    except Exception as e:  # a truncated or foreign file: name it
        raise DatasetError(f"{path}: not a grading crop cache ({e})") from e


# --- augmentation (torch, on the training device) ------------------------------------------------

def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[B, 3, 3]`` from angles (radians) about the three axes."""
    a, b, c = angles[:, 0], angles[:, 1], angles[:, 2]
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], 1).view(-1, 3, 3)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], 1).view(-1, 3, 3)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


@dataclass
class Augment:
    """What a localisation error, another scanner or another patient could change in a crop.

    Geometry (in millimetres, so anisotropic voxels rotate correctly): rotations up to
    ``rotate_deg`` about each axis, shifts up to ``shift_mm``, scaling by ``1 +- scale``, a left-right
    mirror (which swaps left and right heads). Intensity: gamma, gain, a smooth bias field, Gaussian
    noise, one quantisation step of dither, and sometimes a slab of zeros at an edge (a crop reaching
    outside the field of view).

    With the axial channels (``[B, 3, ...]``): one geometric transform for all three (the two series
    share a frame of reference), the intensity changes drawn apart for the two images (two series,
    two sets of scanner settings), the presence mask kept binary, and with ``axial_drop`` the axial
    channels of a crop blanked (a study without an axial series) so the model grades both ways.
    """

    rotate_deg: tuple = (10.0, 6.0, 8.0)  # about L (tilt in the sagittal plane), P, S
    shift_mm: tuple = (3.0, 3.0, 3.0)
    scale: float = 0.08
    mirror: bool = True
    gamma: tuple = (0.7, 1.5)
    gain: float = 0.15
    bias: float = 0.25
    noise: float = 0.04
    edge_zero_prob: float = 0.1
    axial_drop: float = 0.25

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                 measures: Optional[torch.Tensor] = None):
        """``x`` [B, C, L, P, S] float (0-1.5; C = 1, or 3 with the axial channels), ``y`` [B, 13]
        (or [B, k, 13]) per-head labels -> augmented copies ``(x, y)``; with ``measures``
        ([B, 12], ``grading/measures.py``) ``(x, y, measures)``, left and right swapped with the mirror."""
        x, y, measures = self._augment(x, y, gen, measures)
        return (x, y) if measures is None else (x, y, measures)

    def _augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, measures: Optional[torch.Tensor]):
        B, dev = x.shape[0], x.device

        def U(*shape):
            return torch.rand(*shape, generator=gen, device=gen.device).to(dev)

        perm = torch.as_tensor(mirror_permutation(), device=dev)
        if self.mirror:  # y: [B, 13] or [B, k, 13] (targets and allowed-class masks together)
            flip = U(B) < 0.5
            x = x.clone()  # flipped in place, crop by crop: two full copies fewer than torch.where
            x[flip] = x[flip].flip(2)
            y = torch.where(flip.view(-1, *([1] * (y.dim() - 1))), y[..., perm], y)
            if measures is not None:
                mperm = torch.as_tensor(mirror_measure_permutation(), device=dev)
                measures = torch.where(flip[:, None], measures[:, mperm], measures)
        # rigid + scale, in mm: grid coords (S, P, L) normalised by the half extents
        half = torch.tensor([(n - 1) / 2 * s for n, s in zip(x.shape[2:], CROP_SPACING)], device=dev)  # L, P, S
        half_xyz = half.flip(0)  # grid_sample's x, y, z = S, P, L
        ang = (U(B, 3) * 2 - 1) * torch.tensor(self.rotate_deg, device=dev) * math.pi / 180
        R = _rotation(ang.flip(1))  # angles about S, P, L in grid order
        s = 1 + (U(B, 1, 1) * 2 - 1) * self.scale
        A = torch.diag(1 / half_xyz) @ (R * s) @ torch.diag(half_xyz)
        t = ((U(B, 3) * 2 - 1) * torch.tensor(self.shift_mm, device=dev)).flip(1) / half_xyz
        theta = torch.cat([A, t[:, :, None]], 2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        if x.shape[1] == 1:
            return self._intensity(x, U, gen), y, measures
        present = (x[:, 2:3] > 0.5).float()
        present.mul_((U(B, 1, 1, 1, 1) >= self.axial_drop).float())  # axial hidden on a share of crops
        axial = self._intensity(x[:, 1:2], U, gen, edges=False).mul_(present)
        return torch.cat([self._intensity(x[:, :1], U, gen), axial, present], 1), y, measures

    def _intensity(self, x: torch.Tensor, U, gen: torch.Generator, edges: bool = True) -> torch.Tensor:
        """Gamma, gain, bias ramp, noise, dither and (``edges``) a zeroed edge slab on ``[B, 1, ...]``.

        Written as few full-size passes as it can be (in place, the ramp and the gain built by
        broadcasting): on a 2-core CPU augmentation otherwise costs as much as the network's step."""
        B, dev = x.shape[0], x.device
        g = self.gamma[0] + U(B, 1, 1, 1, 1) * (self.gamma[1] - self.gamma[0])
        x = x.clamp_min(0).pow_(g)  # a new tensor: the in-place steps below never touch the caller's
        scale = 1 + (U(B, 1, 1, 1, 1) * 2 - 1) * self.gain
        if self.bias > 0:  # linear ramp along a random direction
            L, P, S = (torch.linspace(-1, 1, n, device=dev).view(*[n if a == i else 1 for a in range(3)])
                       for i, n in enumerate(x.shape[2:]))
            d = (U(B, 3) * 2 - 1) * self.bias
            field = (1 + d[:, 0, None, None, None] * L + d[:, 1, None, None, None] * P) + d[:, 2, None, None, None] * S
            scale = field[:, None].clamp_min_(0.3).mul_(scale)
        x.mul_(scale)
        x.add_(torch.randn(x.shape, generator=gen, device=gen.device).to(dev).mul_(U(B, 1, 1, 1, 1) * self.noise))
        x.add_(U(*x.shape).sub_(0.5).div_(IMAGE_SCALE))
        if edges and self.edge_zero_prob > 0:
            for i in torch.nonzero(U(B) < self.edge_zero_prob).flatten().tolist():
                axis = 2 + int(U(1).item() * 3) % 3
                n = x.shape[axis]
                k = max(1, int(n * (0.05 + 0.2 * U(1).item())))
                sl = [slice(None)] * 5
                sl[0] = i
                sl[axis] = slice(0, k) if U(1).item() < 0.5 else slice(n - k, n)
                x[tuple(sl)] = 0
        return x.clamp_(0, CLIP)


def sampling_weights(targets: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-crop sampling weight: the rarest of its exact classes (over heads) ^ -power, normalised.

    Heads without an exact label on a crop (-1: a set of classes or unknown) do not weigh it."""
    w = np.ones(len(targets))
    for j, h in enumerate(HEAD_NAMES):
        t = targets[:, j]
        exact = t >= 0
        if not exact.any():
            continue
        counts = np.bincount(t[exact], minlength=n_classes(h)).astype(float)
        freq = counts / max(counts.sum(), 1)
        rarity = np.ones(len(t))
        rarity[exact] = (freq[t[exact]] * n_classes(h)).clip(1e-6) ** -power
        w = np.maximum(w, rarity)
    return w / w.sum()


class BatchSource:
    """Endless augmented training batches, the whole crop set kept on the training device."""

    def __init__(self, crops: CropSet, batch_size: int, device: str = "cpu", seed: int = 0,
                 augment: Optional[Augment] = None, balance: float = 0.5, channels: int = 1):
        self.device = torch.device(device)
        self.channels = channels
        self.x = torch.as_tensor(crops.image).to(self.device)  # uint8, ~120 kB per crop
        self.axial = torch.as_tensor(crops.axial).to(self.device) if channels > 1 else None
        self.y = torch.as_tensor(crops.targets, dtype=torch.long).to(self.device)
        self.allowed = torch.as_tensor(crops.allowed.astype(np.int64)).to(self.device)
        self.measures = torch.as_tensor(crops.measures).to(self.device)
        self.batch_size = batch_size
        self.w = torch.as_tensor(sampling_weights(crops.targets, balance) if balance > 0 else
                                 np.full(len(crops), 1 / len(crops)))
        self.gen = torch.Generator().manual_seed(seed)  # sampling (CPU)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(seed + 1)  # augmentation, where the data is
        self.augment = augment or Augment()

    def __call__(self) -> Iterator[Dict[str, torch.Tensor]]:
        while True:
            idx = torch.multinomial(self.w, self.batch_size, replacement=True, generator=self.gen).to(self.device)
            x = network_input(self.x[idx], self.axial[idx] if self.axial is not None else None, self.channels)
            x, ya, m = self.augment(x, torch.stack([self.y[idx], self.allowed[idx]], 1), self.aug_gen, self.measures[idx])
            yield {"image": x, "target": ya[:, 0], "allowed": ya[:, 1], "measures": m}


def iterate_images(crops: CropSet, batch_size: int, device, channels: int = 1) -> Iterator[torch.Tensor]:
    """Unaugmented ``[b, channels, 24, 80, 64]`` float batches in order (validation, calibration)."""
    for i in range(0, len(crops), batch_size):
        sl = slice(i, i + batch_size)
        yield network_input(torch.as_tensor(crops.image[sl]), torch.as_tensor(crops.axial[sl]), channels).to(device)

