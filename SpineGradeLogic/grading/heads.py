"""How each grading head is modelled, and probabilities from the network's raw outputs.

Two kinds of head:

* **ordinal** (``pfirrmann``, ``disc_narrowing`` and the five stenosis heads): a cumulative-link
  (proportional-odds) model. The network gives one latent severity score ``s`` per head; the head
  has ``K - 1`` ordered thresholds ``t_1 < ... < t_{K-1}`` and ``P(grade <= k) = sigmoid(t_k - s)``.
  Class probabilities are differences of these cumulative probabilities, so they are consistent with
  the grades' order by construction: raising ``s`` moves probability mass towards higher grades
  (first-order stochastic dominance) and ``P(grade > k)`` always falls with ``k``. The phantom's
  ground truth for these heads is a continuous measurement cut at thresholds (height loss, canal
  area compromise), which is exactly what a cumulative-link model describes.
* **nominal** (``modic`` types 1/2/3 are different marrow changes, not severities; the binary heads):
  plain softmax over the classes.

The network's output is one flat tensor ``[B, OUTPUT_SIZE]``: per head, in ``HEAD_NAMES`` order,
``K - 1`` cumulative logits ``t_k - s`` (ordinal) or ``K`` logits (nominal). Temperature scaling
divides either by the head's temperature, which keeps the order of the thresholds.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..names import HEAD_NAMES, HEADS

ORDINAL_HEADS: Tuple[str, ...] = (
    "pfirrmann",
    "disc_narrowing",
    "central_canal_stenosis",
    "foraminal_stenosis_left",
    "foraminal_stenosis_right",
    "lateral_recess_stenosis_left",
    "lateral_recess_stenosis_right",
)
NOMINAL_HEADS: Tuple[str, ...] = tuple(h for h in HEAD_NAMES if h not in ORDINAL_HEADS)

#: Classes counted as "normal" when choosing a level's most abnormal head (Pfirrmann 1-2 are normal discs).
NORMAL_CLASSES: Dict[str, Tuple[int, ...]] = {h: (1, 2) if h == "pfirrmann" else (0,) for h in HEAD_NAMES}

#: left/right head pairs: a left-right mirror of a crop swaps them
MIRROR_PAIRS = (
    ("foraminal_stenosis_left", "foraminal_stenosis_right"),
    ("lateral_recess_stenosis_left", "lateral_recess_stenosis_right"),
)


def n_classes(head: str) -> int:
    return len(HEADS[head])


def is_ordinal(head: str) -> bool:
    return head in ORDINAL_HEADS


def n_outputs(head: str) -> int:
    """Raw outputs the network gives for ``head``."""
    return n_classes(head) - 1 if is_ordinal(head) else n_classes(head)


def output_slices(heads: Sequence[str] = HEAD_NAMES) -> Dict[str, slice]:
    """Where each head's raw outputs sit in the flat output tensor."""
    out, i = {}, 0
    for h in heads:
        out[h] = slice(i, i + n_outputs(h))
        i += n_outputs(h)
    return out


OUTPUT_SLICES = output_slices()
OUTPUT_SIZE = sum(n_outputs(h) for h in HEAD_NAMES)


def split_outputs(raw: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``[B, OUTPUT_SIZE]`` -> head -> its raw outputs ``[B, n_outputs(head)]``."""
    return {h: raw[:, s] for h, s in OUTPUT_SLICES.items()}


def head_log_probabilities(head: str, raw: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log class probabilities ``[B, K]`` of one head from its raw outputs (differentiable)."""
    z = raw / float(temperature)
    if not is_ordinal(head):
        return torch.log_softmax(z, dim=1)
    # cumulative P(y <= k) = sigmoid(z_k), k = 1..K-1; P(y = k) = F_k - F_{k-1} with F_0 = 0, F_K = 1
    cdf = torch.sigmoid(z)
    zeros = torch.zeros_like(cdf[:, :1])
    ones = torch.ones_like(cdf[:, :1])
    full = torch.cat([zeros, cdf, ones], dim=1)
    p = (full[:, 1:] - full[:, :-1]).clamp_min(1e-12)
    return torch.log(p / p.sum(1, keepdim=True))


def probabilities(raw: torch.Tensor, temperatures: Optional[Mapping[str, float]] = None,
                  heads: Sequence[str] = HEAD_NAMES) -> Dict[str, np.ndarray]:
    """head -> ``[B, K]`` probabilities (numpy, rows sum to 1), temperatures applied where given."""
    temperatures = temperatures or {}
    parts = split_outputs(raw.detach().float())
    return {h: head_log_probabilities(h, parts[h], temperatures.get(h, 1.0)).exp().cpu().numpy() for h in heads}


def grade_indices(y: np.ndarray) -> np.ndarray:
    """Grades (class values) ``[N, 13]`` -> class indices, head by head (Pfirrmann 1-5 -> 0-4)."""
    y = np.asarray(y)
    return np.stack([np.searchsorted(np.asarray(HEADS[h]), y[:, i]) for i, h in enumerate(HEAD_NAMES)], 1)


def abnormality(head: str, probs: np.ndarray) -> np.ndarray:
    """Probability that ``head`` is not normal (1 - the probability of its normal classes)."""
    classes = HEADS[head]
    normal = [classes.index(c) for c in NORMAL_CLASSES[head]]
    return 1.0 - np.asarray(probs)[..., normal].sum(-1)


def most_abnormal_head(probs: Mapping[str, np.ndarray], heads: Optional[Sequence[str]] = None) -> str:
    """The head whose probability of being abnormal is highest (ties: first in ``HEAD_NAMES``)."""
    heads = [h for h in (heads or HEAD_NAMES) if h in probs]
    scores = [float(abnormality(h, probs[h])) for h in heads]
    return heads[int(np.argmax(scores))]


def evidence_class(head: str, probs: np.ndarray, shown: Optional[int] = None) -> int:
    """The class index a saliency map explains: the grade shown (class index ``shown``; by default the
    most probable), or, where that is a normal class, the most probable abnormal one (the map then
    shows where abnormality was looked for)."""
    p = np.asarray(probs, float)
    top = int(np.argmax(p)) if shown is None else int(shown)
    classes = HEADS[head]
    if classes[top] not in NORMAL_CLASSES[head]:
        return top
    abnormal = [i for i, c in enumerate(classes) if c not in NORMAL_CLASSES[head]]
    return max(abnormal, key=lambda i: p[i])


def mirror_grades(y_idx: np.ndarray) -> np.ndarray:
    """Class indices ``[N, 13]`` with left and right heads swapped (for a left-right mirrored crop)."""
    out = np.array(y_idx, copy=True)
    for a, b in MIRROR_PAIRS:
        ia, ib = HEAD_NAMES.index(a), HEAD_NAMES.index(b)
        out[:, ia], out[:, ib] = y_idx[:, ib], y_idx[:, ia]
    return out


def mirror_permutation() -> List[int]:
    """Column permutation of class-index arrays that swaps the left and right heads."""
    perm = list(range(len(HEAD_NAMES)))
    for a, b in MIRROR_PAIRS:
        ia, ib = HEAD_NAMES.index(a), HEAD_NAMES.index(b)
        perm[ia], perm[ib] = ib, ia
    return perm
