"""Prepared training cases of the vertebra model, their cache files, and slice sampling helpers.

Kept free of SimpleITK so that training can run where only torch, MONAI and numpy are installed
(the GPU machine), from caches prepared elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from .spec import IN_SLICES

IMAGE_SCALE = 170.0  # image 0-1.5 stored as uint8: 1/170 steps, far below the noise


@dataclass
class PreparedCase:
    name: str
    image: np.ndarray  # float32 [slice, ap, si], 0-1
    semantic: np.ndarray  # int8, SEMANTIC index / IGNORE / NOT_BODY
    level: np.ndarray  # int8, LEVELS index / IGNORE

    def trimmed(self) -> "PreparedCase":
        """Only the slices training can sample (bony ones) and their stack neighbours: smaller caches."""
        useful = useful_slices(self)
        half = IN_SLICES // 2
        lo, hi = max(0, useful.min() - half), min(self.image.shape[0], useful.max() + half + 1)
        return PreparedCase(self.name, self.image[lo:hi], self.semantic[lo:hi], self.level[lo:hi])

    def save(self, path: Path) -> None:
        image = np.clip(np.round(self.image * IMAGE_SCALE), 0, 255).astype(np.uint8)
        np.savez_compressed(path, image=image, semantic=self.semantic.astype(np.int8), level=self.level.astype(np.int8))

    @classmethod
    def load(cls, path: Path) -> "PreparedCase":
        d = np.load(path)
        name = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.stem
        return cls(name, d["image"].astype(np.float32) / IMAGE_SCALE, d["semantic"].astype(np.int64),
                   d["level"].astype(np.int64))


def slice_stack(image: np.ndarray, index: int) -> np.ndarray:
    """``IN_SLICES`` neighbouring slices centred on ``index`` (edges repeated) -> [C, ap, si]."""
    half = IN_SLICES // 2
    idx = np.clip(np.arange(index - half, index + half + 1), 0, image.shape[0] - 1)
    return image[idx]


def useful_slices(case: PreparedCase) -> np.ndarray:
    """Slices with any supervised bony voxel: sampling elsewhere teaches little."""
    bony = ((case.semantic >= 1) & (case.semantic <= 4)).any(axis=(1, 2))
    return np.flatnonzero(bony) if bony.any() else np.arange(case.image.shape[0])


def split_names(names: Sequence[str], validation_share: float, seed: int = 0) -> tuple[List[str], List[str]]:
    """A fixed, documented split: the same names always land on the same side."""
    names = sorted(names)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    n_val = max(1, int(round(len(names) * validation_share))) if validation_share > 0 else 0
    val = sorted(names[i] for i in order[:n_val])
    return [n for n in names if n not in val], val


def write_split(path: Path, train: Sequence[str], val: Sequence[str]) -> None:
    path.write_text(json.dumps({"train": list(train), "validation": list(val)}, indent=1))
