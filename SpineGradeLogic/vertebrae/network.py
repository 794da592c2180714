"""The vertebra model's network: a MONAI 2-D UNet on sagittal slices with two heads in one output.

Input: ``IN_SLICES`` neighbouring sagittal slices as channels (2.5-D), so the network sees a little
of the third dimension. Output channels: ``len(SEMANTIC)`` semantic logits, then ``len(LEVELS)``
vertebra-level logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from .spec import IN_SLICES
from .targets import BODY, IGNORE, LEVELS, NOT_BODY, SEMANTIC

NETWORK_KWARGS = dict(
    spatial_dims=2,
    in_channels=IN_SLICES,
    out_channels=len(SEMANTIC) + len(LEVELS),
    channels=(16, 32, 64, 128, 256),
    strides=(2, 2, 2, 2),
    num_res_units=2,
    norm="instance",
    dropout=0.1,
)


def build_network() -> UNet:
    return UNet(**NETWORK_KWARGS)


def split_heads(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(SEMANTIC)
    return logits[:, :n], logits[:, n:]


def partial_label_loss(logits: torch.Tensor, semantic: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Cross-entropy that understands partial labels, plus a soft Dice on the semantic head.

    ``semantic`` holds a class index, ``IGNORE`` or ``NOT_BODY`` (-log(1 - p_body)); ``level`` a
    level index or ``IGNORE``.
    """
    sem_logits, lvl_logits = split_heads(logits)
    logp = F.log_softmax(sem_logits, dim=1)
    losses = []
    known = semantic >= 0
    if known.any():
        losses.append(F.nll_loss(logp, semantic.clamp(min=0), reduction="none")[known].mean())
        # soft Dice over the classes present: keeps small structures (discs, cord) from vanishing
        p = logp.exp()
        onehot = F.one_hot(semantic.clamp(min=0), len(SEMANTIC)).permute(0, 3, 1, 2).float()
        m = known.unsqueeze(1).float()
        inter = (p * onehot * m).sum((0, 2, 3))
        denom = ((p + onehot) * m).sum((0, 2, 3))
        present = onehot.mul(m).sum((0, 2, 3)) > 0
        if present.any():
            losses.append((1 - (2 * inter[present] + 1) / (denom[present] + 1)).mean())
    not_body = semantic == NOT_BODY
    if not_body.any():
        p_body = logp[:, BODY].exp()
        losses.append(-torch.log1p(-p_body.clamp(max=1 - 1e-6))[not_body].mean())
    if (level != IGNORE).any():
        losses.append(F.cross_entropy(lvl_logits, level, ignore_index=IGNORE))
    return torch.stack(losses).sum() if losses else logits.sum() * 0
