"""The generator's continuous measurements behind the grades, as an auxiliary training target.

Every grade of a generated disc is a measurement cut at fixed thresholds (docs/phantom.md): height
loss, nucleus hydration, slip, bulge, herniation and endplate-defect depths, and the area lost by
the canal, the lateral recesses and the foramina. A grade alone tells the network only which side
of a threshold a disc lies; the measurement tells it how far, on every crop, and so teaches more
per crop (the CPU-sized runs see each crop a handful of times). ``MeasureTrainer`` puts one linear
layer on the grading network's pooled features to predict them during training; the grading heads
and the shipped network are unchanged (the layer is dropped when the bundle is written).

Values are scaled so that each head's threshold lies near 0.5 or inside 0-1 and clipped to 0-2;
NaN where a crop has no measurement (dataset crops, caches prepared before this existed).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from ..training.precision import full_precision

#: name -> (source, key, divisor): ``source`` is the truth disc's ``extra`` entry
MEASURES = {
    "height_loss": ("measurements", "height_ratio", None),  # 1 - ratio
    "hydration": ("measurements", "hydration", 1.0),
    "slip": ("measurements", "slip_mm", 6.0),
    "bulge": ("pathology", "bulge_mm", 4.0),
    "herniation": ("pathology", "herniation_mm", 4.0),
    "upper_endplate_defect": ("pathology", "upper_endplate_defect_mm", 4.0),
    "lower_endplate_defect": ("pathology", "lower_endplate_defect_mm", 4.0),
    "central_compromise": ("measurements", "central_compromise", 1.0),
    "foramen_compromise_left": ("measurements", "foramen_compromise_left", 1.0),
    "foramen_compromise_right": ("measurements", "foramen_compromise_right", 1.0),
    "recess_compromise_left": ("measurements", "recess_compromise_left", 1.0),
    "recess_compromise_right": ("measurements", "recess_compromise_right", 1.0),
}
MEASURE_NAMES = tuple(MEASURES)
MAX_VALUE = 2.0
MIN_SPREAD = 0.02  # a measurement that hardly varies in the training set is not blown up by 1 / spread


def measure_vector(extra: Optional[Mapping]) -> np.ndarray:
    """float32 [len(MEASURE_NAMES)] from a generated disc's ``extra`` (NaN for what it lacks)."""
    out = np.full(len(MEASURE_NAMES), np.nan, np.float32)
    for i, (source, key, divisor) in enumerate(MEASURES.values()):
        value = ((extra or {}).get(source) or {}).get(key)
        if value is None:
            continue
        v = 1.0 - float(value) if divisor is None else float(value) / divisor
        out[i] = np.clip(v, 0.0, MAX_VALUE)
    return out


def empty_measures(n: int) -> np.ndarray:
    return np.full((n, len(MEASURE_NAMES)), np.nan, np.float32)


def mirror_measure_permutation() -> list:
    """Column permutation that swaps the left and right measurements (a left-right mirrored crop)."""
    names = list(MEASURE_NAMES)
    perm = list(range(len(names)))
    for i, n in enumerate(names):
        if n.endswith("_left"):
            j = names.index(n[: -len("_left")] + "_right")
            perm[i], perm[j] = j, i
    return perm


def measure_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over measurements of the mean squared error on the crops that have one (NaN: skipped)."""
    ok = ~torch.isnan(target)
    err = torch.where(ok, predicted - torch.nan_to_num(target), torch.zeros_like(predicted)) ** 2
    return (err.sum(0) / ok.sum(0).clamp_min(1)).sum()


class MeasureTrainer(torch.nn.Module):
    """A grading network plus a linear measurement head on its pooled features (training only).

    The head predicts each measurement standardised by the training set's mean and spread, so that
    each counts alike in the loss (a foramen's area loss spreads over 0.1, a herniation over 0.7).
    ``forward`` is the grading network's, so validation and calibration see exactly what will ship;
    ``grades_and_measures`` and ``measure_error`` are what the training loss uses.
    """

    def __init__(self, grading: torch.nn.Module, measures: np.ndarray):
        super().__init__()
        self.grading = grading
        self.measure = torch.nn.Linear(grading.linear.in_features, len(MEASURE_NAMES))
        # zero weights: the new head starts at the mean and cannot jolt a pretrained network's features
        torch.nn.init.zeros_(self.measure.weight)
        torch.nn.init.zeros_(self.measure.bias)
        known = np.asarray(measures, np.float64)
        with np.errstate(all="ignore"):
            mean, sd = np.nanmean(known, 0), np.nanstd(known, 0)
        self.register_buffer("mean", torch.as_tensor(np.nan_to_num(mean), dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(1.0 / np.maximum(np.nan_to_num(sd), MIN_SPREAD), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grading(x)

    def grades_and_measures(self, x: torch.Tensor):
        pooled = self.grading.pooled(x)
        with full_precision(pooled):  # like the grade heads: float32 under mixed precision
            measured = self.measure(self.grading.dropout(pooled))
        return self.grading.grades(pooled), measured

    def measure_error(self, predicted: torch.Tensor, measures: torch.Tensor) -> torch.Tensor:
        """:func:`measure_loss` of standardised predictions against measurements (NaN: skipped)."""
        return measure_loss(predicted, (measures - self.mean) * self.scale)

    def predicted_measures(self, x: torch.Tensor) -> torch.Tensor:
        """Measurements in their stored scale (for checking what the head learned)."""
        return self.measure(self.grading.pooled(x)) / self.scale + self.mean


def measures_of(discs: Sequence) -> np.ndarray:
    """[n, len(MEASURE_NAMES)] for generated truth discs (their ``extra``)."""
    return np.stack([measure_vector(getattr(d, "extra", None)) for d in discs]) if len(discs) else empty_measures(0)
