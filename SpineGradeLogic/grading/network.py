"""The grading network: a small 3-D residual CNN from MONAI blocks with one output block per head.

Input: one disc-centred crop ``[B, C, 24, 80, 64]`` (axes L, P, S at 2 / 1 / 1 mm, see
``discs/crop.py``), intensities normalised by :func:`~SpineGradeLogic.grading.data.normalise_crop`.
``C`` is 3 (``data.INPUT_CHANNELS``): the sagittal crop, the study's axial T2 resampled onto the same
grid (0 where there is none) and the axial presence mask; a 1-channel network (the bundles
0.1.0 and 0.2.0; 0.3.0 and later have three) reads the sagittal crop alone. :func:`widen_input` turns a 1-channel network into a 3-channel one
that computes exactly what it did until training teaches it to use the axial channels.

========  ==========================================  =========================  ==========
stage     MONAI block                                 output (C x L x P x S)     voxel (mm)
========  ==========================================  =========================  ==========
stem      Convolution, stride (1, 2, 2)               16 x 24 x 40 x 32          2 x 2 x 2
stage 1   ResidualUnit (2 subunits), stride 2         32 x 12 x 20 x 16          4
stage 2   ResidualUnit (2 subunits), stride 2         64 x 6 x 10 x 8            8
stage 3   ResidualUnit (2 subunits), stride 1         128 x 6 x 10 x 8           8
pool      global average and global max, concat      256
heads     dropout + one Linear: per ordinal head one severity score (plus K - 1 ordered thresholds),
          per nominal head K logits
========  ==========================================  =========================  ==========

Grad-CAM's target layer is ``features.3`` (stage 3, 8 mm cells): the last convolutional map, kept
at 8 mm rather than pooled further so that the evidence can be told apart at a disc's scale.
About 0.9 M parameters (3.6 MB of float32 weights).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit

from ..names import HEAD_NAMES
from ..training.precision import full_precision
from .heads import OUTPUT_SIZE, is_ordinal, n_classes

CROP_SHAPE = (24, 80, 64)
GRADCAM_LAYER = "features.3"

NETWORK_KWARGS = dict(in_channels=3, channels=(16, 32, 64, 128), dropout=0.2)
STEM_WEIGHT = "features.0.conv.weight"


class GradingNet(torch.nn.Module):
    """Multi-task grading network; ``forward`` returns the flat raw output ``[B, OUTPUT_SIZE]``
    (see :mod:`SpineGradeLogic.grading.heads` for its layout and how it becomes probabilities)."""

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.2):
        super().__init__()
        c0, c1, c2, c3 = channels
        norm, act = "batch", "prelu"
        self.features = torch.nn.Sequential(
            Convolution(3, in_channels, c0, strides=(1, 2, 2), kernel_size=3, norm=norm, act=act),
            ResidualUnit(3, c0, c1, strides=2, subunits=2, norm=norm, act=act),
            ResidualUnit(3, c1, c2, strides=2, subunits=2, norm=norm, act=act),
            ResidualUnit(3, c2, c3, strides=1, subunits=2, norm=norm, act=act),
        )
        self.dropout = torch.nn.Dropout(dropout)
        self.n_pre = [1 if is_ordinal(h) else n_classes(h) for h in HEAD_NAMES]
        self.linear = torch.nn.Linear(2 * c3, sum(self.n_pre))
        # ordinal thresholds: first one free, then positive gaps (softplus) so they stay ordered
        n_ord = sum(n_classes(h) - 1 for h in HEAD_NAMES if is_ordinal(h))
        self.thresholds = torch.nn.Parameter(torch.zeros(n_ord))
        with torch.no_grad():
            i = 0
            for h in HEAD_NAMES:
                if is_ordinal(h):
                    k = n_classes(h) - 1
                    self.thresholds[i] = -1.0  # spread the initial cut points around the origin
                    self.thresholds[i + 1:i + k] = 0.5  # softplus(0.5) ~ 0.97 between cut points
                    i += k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grades(self.pooled(x))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global average and max of the last feature map, ``[B, 2 * channels[-1]]``, in float32 (also
        when the convolutions ran under bfloat16 autocast)."""
        f = self.features(x).float()
        return torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1)

    def grades(self, pooled: torch.Tensor) -> torch.Tensor:
        """The flat raw output from pooled features (dropout, the linear layer, ordered thresholds).

        Always in float32: cut points a few hundredths apart would blur in bfloat16."""
        with full_precision(pooled):
            return self._grades(pooled.float())

    def _grades(self, pooled: torch.Tensor) -> torch.Tensor:
        pre = self.linear(self.dropout(pooled))
        out, i, t = [], 0, 0
        for h, n in zip(HEAD_NAMES, self.n_pre):
            if is_ordinal(h):
                k = n_classes(h) - 1
                raw_t = self.thresholds[t:t + k]
                thr = torch.cat([raw_t[:1], raw_t[:1] + torch.cumsum(F.softplus(raw_t[1:]) + 1e-3, 0)])
                out.append(thr[None, :] - pre[:, i:i + 1])  # cumulative logits t_k - s
                t += k
            else:
                out.append(pre[:, i:i + n])
            i += n
        raw = torch.cat(out, dim=1)
        assert raw.shape[1] == OUTPUT_SIZE
        return raw


def build_network(**kwargs) -> GradingNet:
    return GradingNet(**{**NETWORK_KWARGS, **kwargs})


def input_channels(network: torch.nn.Module) -> int:
    """How many input channels a grading network reads (1: sagittal only; 3: with the axial T2)."""
    for name, p in network.named_parameters():  # also inside a training wrapper (``measures.MeasureTrainer``)
        if name == STEM_WEIGHT or name.endswith("." + STEM_WEIGHT):
            return int(p.shape[1])
    raise ValueError("not a grading network: it has no stem convolution")


def widen_input(state_dict: dict, in_channels: int) -> dict:
    """A state dict whose stem reads ``in_channels`` channels: the new channels' weights are zero, so
    the network's output is unchanged whatever they hold."""
    w = state_dict[STEM_WEIGHT]
    if w.shape[1] > in_channels:
        raise ValueError(f"cannot narrow a grading network from {w.shape[1]} to {in_channels} input channels")
    out = dict(state_dict)
    out[STEM_WEIGHT] = torch.cat([w, w.new_zeros((w.shape[0], in_channels - w.shape[1], *w.shape[2:]))], 1)
    return out
