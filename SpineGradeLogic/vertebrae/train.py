"""Training of the vertebra model: sampled 2.5-D slice stacks, MONAI augmentation, body Dice on validation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandSpatialCropd,
    SpatialPadd,
)

from .cases import PreparedCase, slice_stack, useful_slices
from .infer import predict_grid
from .network import partial_label_loss
from .spec import PATCH
from .targets import BODY, IGNORE

log = logging.getLogger("spinegrade")



def augmentation(seed: int = 0) -> Compose:
    """Geometry and intensity changes a scanner or patient could make (labels follow with nearest)."""
    keys = ["image", "semantic", "level"]
    t = Compose([
        SpatialPadd(keys, PATCH, mode="edge"),
        RandAffined(keys, prob=0.8, rotate_range=0.3, scale_range=0.15, translate_range=(10, 10),
                    mode=("bilinear", "nearest", "nearest"), padding_mode="border"),
        RandSpatialCropd(keys, PATCH, random_size=False),
        RandBiasFieldd("image", prob=0.4, coeff_range=(0.0, 0.3)),
        RandAdjustContrastd("image", prob=0.5, gamma=(0.6, 1.6)),
        RandScaleIntensityd("image", factors=0.2, prob=0.5),
        RandGaussianSmoothd("image", prob=0.2, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0)),
        RandGaussianNoised("image", prob=0.4, std=0.05),
    ])
    t.set_random_state(seed)
    return t


def cut_field_of_view(stack: np.ndarray, semantic: np.ndarray, level: np.ndarray, rng: np.random.Generator,
                      lo: float = 0.25, hi: float = 0.75) -> tuple:
    """The slice as a scan whose field of view ends higher up: everything below a cut placed between
    ``lo`` and ``hi`` of the slice's bony superior-inferior extent becomes outside the field of view
    (image 0, as `grid.study_on_grid` leaves it; targets ``IGNORE``).

    Why: nearly every training slice shows the sacrum, so the level head learned to count up from
    the lowest vertebra it sees; a thoraco-lumbar scan without the sacrum was then named as if its
    lowest vertebra were L5. Arrays are ``[C, ap, si]`` (image) and ``[ap, si]`` (targets), si
    running inferior to superior. Slices without bone come back unchanged.
    """
    rows = np.flatnonzero(((semantic >= 1) & (semantic <= 4)).any(axis=0))
    if len(rows) < 2:
        return stack, semantic, level
    cut = int(round(rows[0] + rng.uniform(lo, hi) * (rows[-1] - rows[0])))
    stack, semantic, level = stack.copy(), semantic.copy(), level.copy()
    stack[..., :cut] = 0.0
    semantic[:, :cut] = IGNORE
    level[:, :cut] = IGNORE
    return stack, semantic, level


class SliceStacks(torch.utils.data.IterableDataset):
    """Endless augmented 2.5-D slice stacks: a case drawn by weight, then one of its useful slices.

    By default real and generated cases each supply half the samples, however many there are of
    each: the real scans set the labelling convention the Dice is measured against. A share
    ``fov_cut`` of the samples has its field of view cut from below (`cut_field_of_view`).
    """

    def __init__(self, cases: Sequence[PreparedCase], seed: int = 0, real_share: float = 0.5, fov_cut: float = 0.0):
        self.cases, self.seed, self.fov_cut = list(cases), seed, fov_cut
        self.slices = [useful_slices(c) for c in self.cases]
        real = np.array([c.name.startswith("real-") for c in self.cases])
        w = np.ones(len(self.cases))
        if real.any() and (~real).any():
            w[real] = real_share / real.sum()
            w[~real] = (1 - real_share) / (~real).sum()
        self.weights = w / w.sum()

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, worker])  # each worker its own stream
        aug = augmentation(self.seed * 1000 + worker)
        while True:
            ci = int(rng.choice(len(self.cases), p=self.weights))
            c, s = self.cases[ci], int(rng.choice(self.slices[ci]))
            stack, semantic, level = slice_stack(c.image, s), c.semantic[s], c.level[s]
            if rng.random() < 0.5:  # left-right mirror: neighbours swap sides
                stack = stack[::-1].copy()
            if self.fov_cut and rng.random() < self.fov_cut:
                stack, semantic, level = cut_field_of_view(stack, semantic, level, rng)
            d = aug({"image": stack, "semantic": semantic[None].astype(np.float32),
                     "level": level[None].astype(np.float32)})
            yield {
                "image": torch.as_tensor(np.asarray(d["image"])).float(),
                "semantic": torch.as_tensor(np.asarray(d["semantic"]))[0].round().long(),
                "level": torch.as_tensor(np.asarray(d["level"]))[0].round().long(),
            }


def batch_sampler(cases: Sequence[PreparedCase], batch_size: int, seed: int = 0, workers: int = 0,
                  real_share: float = 0.5, fov_cut: float = 0.0):
    """Returns a function giving an iterator of batches (workers > 0: augmentation in parallel processes)."""
    loader = torch.utils.data.DataLoader(SliceStacks(cases, seed, real_share, fov_cut), batch_size=batch_size, num_workers=workers,
                                         persistent_workers=workers > 0)
    return lambda: iter(loader)


def loss_on_batch(network: torch.nn.Module, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    return partial_label_loss(network(batch["image"]), batch["semantic"], batch["level"])


def body_dice(network: torch.nn.Module, cases: Sequence[PreparedCase], device: str = "cpu") -> Dict[str, float]:
    """Mean vertebral-body Dice and level accuracy over whole validation cases (supervised voxels only)."""
    dices: List[float] = []
    correct, total = 0, 0
    for c in cases:
        sem, lvl = predict_grid(network, c.image, device=device)
        pred_body = sem.argmax(1) == BODY
        known = c.semantic != IGNORE
        truth = c.semantic == BODY
        inter = np.logical_and(pred_body, truth)[known].sum()
        dices.append(2 * inter / max(1, pred_body[known].sum() + truth[known].sum()))
        has_level = c.level != IGNORE
        correct += int((lvl.argmax(1)[has_level] == c.level[has_level]).sum())
        total += int(has_level.sum())
    return {"body_dice": float(np.mean(dices)) if dices else 0.0, "level_accuracy": correct / max(1, total)}
