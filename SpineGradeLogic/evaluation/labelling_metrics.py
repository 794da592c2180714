"""Labelling metrics of issue 4: VerSe identification rate, all-correct scans, centroid error, Dice.

Identification (VerSe definition): a true vertebra counts as identified when the prediction with
its label lies within 20 mm of its true centroid *and* is the nearest of all predicted centroids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice

from ..names import LABEL_TO_VERTEBRA

ID_TOLERANCE_MM = 20.0


@dataclass
class ScanScores:
    """One scan's labelling figures.

    Attributes:
        identified: true label -> identified (VerSe definition).
        centroid_error_mm: true label -> distance to the same-labelled prediction (labels predicted only).
        dice: label value -> Dice of the predicted and true masks (labels in either).
    """

    identified: Dict[str, bool] = field(default_factory=dict)
    centroid_error_mm: Dict[str, float] = field(default_factory=dict)
    dice: Dict[int, float] = field(default_factory=dict)
    n_predicted: int = 0

    @property
    def identification_rate(self) -> float:
        return float(np.mean(list(self.identified.values()))) if self.identified else float("nan")

    @property
    def all_correct(self) -> bool:
        """Every true vertebra identified and nothing named that is not there."""
        return bool(self.identified) and all(self.identified.values()) and self.n_predicted == len(self.identified)


def identification(truth: Mapping[str, Sequence[float]], predicted: Mapping[str, Sequence[float]], tol_mm: float = ID_TOLERANCE_MM) -> Dict[str, bool]:
    """Per true label: identified by the VerSe definition."""
    names = list(predicted)
    pts = np.array([predicted[n] for n in names], float).reshape(-1, 3)
    out = {}
    for name, c in truth.items():
        if name not in predicted:
            out[name] = False
            continue
        d = np.linalg.norm(pts - np.asarray(c, float), axis=1)
        out[name] = bool(d[names.index(name)] <= tol_mm and names[int(np.argmin(d))] == name)
    return out


def centroid_errors(truth: Mapping[str, Sequence[float]], predicted: Mapping[str, Sequence[float]]) -> Dict[str, float]:
    """Distance (mm) between true and predicted centroids of every label in both."""
    return {n: float(np.linalg.norm(np.asarray(predicted[n], float) - np.asarray(c, float))) for n, c in truth.items() if n in predicted}


def dice_per_label(truth: np.ndarray, predicted: np.ndarray, values: Sequence[int] | None = None) -> Dict[int, float]:
    """Dice per label value (MONAI's ``compute_dice`` on each label's bounding box, to stay small)."""
    if truth.shape != predicted.shape:
        raise ValueError(f"label maps differ in shape: {truth.shape} vs {predicted.shape}")
    if values is None:
        values = sorted(({int(v) for v in np.unique(truth)} | {int(v) for v in np.unique(predicted)}) - {0})
    out = {}
    for v in values:
        t, p = truth == v, predicted == v
        union = t | p
        if not union.any():
            continue
        idx = np.argwhere(union)
        sl = tuple(slice(a, b + 1) for a, b in zip(idx.min(0), idx.max(0)))
        tt = torch.from_numpy(t[sl][None, None].astype(np.float32))
        pp = torch.from_numpy(p[sl][None, None].astype(np.float32))
        out[int(v)] = float(compute_dice(pp, tt, include_background=True, ignore_empty=False)[0, 0])
    return out


def score_scan(
    truth_centroids: Mapping[str, Sequence[float]],
    predicted_centroids: Mapping[str, Sequence[float]],
    truth_labels: np.ndarray | None = None,
    predicted_labels: np.ndarray | None = None,
    vertebra_values_only: bool = True,
) -> ScanScores:
    """All figures for one scan (centroids in RAS mm; label maps on the same grid, VerSe values)."""
    s = ScanScores(
        identification(truth_centroids, predicted_centroids),
        centroid_errors(truth_centroids, predicted_centroids),
        n_predicted=len(predicted_centroids),
    )
    if truth_labels is not None and predicted_labels is not None:
        d = dice_per_label(np.asarray(truth_labels), np.asarray(predicted_labels))
        s.dice = {k: v for k, v in d.items() if not vertebra_values_only or k in LABEL_TO_VERTEBRA}
    return s


@dataclass
class Summary:
    identification_rate: float
    all_correct_share: float
    mean_centroid_error_mm: float
    mean_dice: float
    n_scans: int
    n_vertebrae: int

    def lines(self) -> List[str]:
        return [
            f"scans: {self.n_scans}, true vertebrae: {self.n_vertebrae}",
            f"identification rate: {100 * self.identification_rate:.1f}%",
            f"scans with every vertebra right: {100 * self.all_correct_share:.1f}%",
            f"mean centroid error: {self.mean_centroid_error_mm:.2f} mm",
            f"mean vertebral-body Dice: {self.mean_dice:.3f}",
        ]


def summarise(scans: Sequence[ScanScores]) -> Summary:
    """Pool scans: identification over all true vertebrae, Dice and errors over all labels."""
    ident = [v for s in scans for v in s.identified.values()]
    errs = [v for s in scans for v in s.centroid_error_mm.values()]
    dice = [v for s in scans for v in s.dice.values()]
    nan = float("nan")
    return Summary(
        float(np.mean(ident)) if ident else nan,
        float(np.mean([s.all_correct for s in scans])) if scans else nan,
        float(np.mean(errs)) if errs else nan,
        float(np.mean(dice)) if dice else nan,
        len(scans),
        len(ident),
    )
