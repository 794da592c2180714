"""Sequence decoder: names for instances ordered superior to inferior, by dynamic programming.

A hidden-Markov chain over ``SPINE_ORDER``: instance ``i+1`` carries the label right below instance
``i``'s. The usual step skips the transitional T13 and L6; taking them costs a prior
(``p_t13``, ``p_l6``), so they are named only where the evidence pays for it. A vertebra the
detector missed (a gap about twice the local spacing) is a skip with its own prior. Emissions are
each instance's evidence vector (the network's class probabilities, anchors such as the sacrum).
Viterbi gives the names; forward-backward gives each instance's posterior marginal, its confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.special import logsumexp

from ..names import SPINE_ORDER

K = len(SPINE_ORDER)
_IDX = {n: i for i, n in enumerate(SPINE_ORDER)}
NEG = -1e9


@dataclass(frozen=True)
class DecoderPriors:
    """Prior probabilities of the chain (per spine, roughly their prevalence)."""

    p_t13: float = 0.03  # 13 thoracic vertebrae
    p_l6: float = 0.05  # 6 lumbar vertebrae (lumbarised S1)
    p_skip: float = 0.01  # the detector missed one vertebra between two instances
    evidence_floor: float = 1e-4  # no evidence value is fully trusted: one bad instance cannot veto a chain
    gap_sigma: float = 0.3  # spread of spacing / local median spacing around 1 (normal) or 2 (skip)


@dataclass
class Decoded:
    """Names, confidences and the full posterior of one decoded sequence.

    Attributes:
        labels: the Viterbi names, one per instance.
        confidence: posterior marginal of each instance's Viterbi name.
        marginals: (N, K) posterior over ``SPINE_ORDER`` per instance.
        skips: positions ``i`` where a vertebra is missing between instance ``i`` and ``i+1``.
        log_likelihood: log of the total probability of the evidence (for comparing hypotheses).
    """

    labels: list
    confidence: np.ndarray
    marginals: np.ndarray
    skips: list
    log_likelihood: float


def _below(label: str) -> list[str]:
    """The labels that may come right below ``label`` (T13 and L6 are optional extras)."""
    special = {"T12": ["L1", "T13"], "T13": ["L1"], "L5": ["S1", "L6"], "L6": ["S1"], "S1": []}
    return special[label] if label in special else [SPINE_ORDER[_IDX[label] + 1]]


def transition_matrix(priors: DecoderPriors) -> tuple[np.ndarray, np.ndarray]:
    """Log transition scores (K x K) for a normal step and for a step over one missed vertebra."""
    p = np.zeros((K, K))
    for a in SPINE_ORDER:
        for b in _below(a):
            if b == "T13":
                w = priors.p_t13
            elif b == "L6":
                w = priors.p_l6
            elif a == "T12":
                w = 1 - priors.p_t13
            elif a == "L5":
                w = 1 - priors.p_l6
            else:
                w = 1.0
            p[_IDX[a], _IDX[b]] = w
    with np.errstate(divide="ignore"):
        step, skip = np.log(p), np.log(p @ p)  # a skip passes through one unseen vertebra
    return np.maximum(step, NEG), np.maximum(skip, NEG)


def _gap_scores(spacing: Optional[Sequence[float]], n: int, priors: DecoderPriors) -> tuple[np.ndarray, np.ndarray]:
    """Log weight of 'neighbours' vs 'one missed between' for each of the n-1 gaps."""
    if spacing is None or n < 2:
        return np.zeros(max(n - 1, 0)), np.full(max(n - 1, 0), np.log(priors.p_skip))
    d = np.asarray(spacing, float)
    ratio = np.empty_like(d)
    for i in range(len(d)):  # spacing against the local median (cervical and lumbar spacings differ 2x)
        nb = np.concatenate([d[max(0, i - 2) : i], d[i + 1 : i + 3]])
        ratio[i] = d[i] / np.median(nb) if len(nb) else 1.0
    s = priors.gap_sigma
    normal = -0.5 * ((ratio - 1.0) / s) ** 2
    skip = np.log(priors.p_skip) - 0.5 * ((ratio - 2.0) / s) ** 2
    return normal, skip


def decode(
    evidence: np.ndarray,
    spacing_mm: Optional[Sequence[float]] = None,
    priors: DecoderPriors = DecoderPriors(),
) -> Decoded:
    """Name N ordered instances (superior first) from their evidence.

    Args:
        evidence: (N, K) non-negative scores over ``SPINE_ORDER`` per instance (probabilities; rows
            need not sum to 1). A uniform row means "no information".
        spacing_mm: the N-1 distances between consecutive instances along the spine, for the gap model.
        priors: the chain's prior probabilities.
    """
    ev = np.asarray(evidence, float)
    n = len(ev)
    if n == 0:
        return Decoded([], np.zeros(0), np.zeros((0, K)), [], 0.0)
    ev = ev / np.maximum(ev.sum(1, keepdims=True), 1e-12)
    emit = np.log(np.maximum(ev, priors.evidence_floor))
    step, skip = transition_matrix(priors)
    g_norm, g_skip = _gap_scores(spacing_mm, n, priors)
    # per gap i: combined (K x K) log transition, and which of step/skip wins for Viterbi back-tracking
    trans = [np.logaddexp(step + g_norm[i], skip + g_skip[i]) for i in range(n - 1)]
    # any field of view: every label may come first, but T13/L6 only as often as they exist
    start = np.ones(K)
    start[_IDX["T13"]], start[_IDX["L6"]] = priors.p_t13, priors.p_l6
    start = np.log(start / start.sum())

    # Viterbi
    score = start + emit[0]
    back = np.zeros((n, K), int)
    for i in range(1, n):
        cand = score[:, None] + trans[i - 1]
        back[i] = cand.argmax(0)
        score = cand.max(0) + emit[i]
    path = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    path = path[::-1]

    # forward-backward (log space)
    fwd = np.zeros((n, K))
    fwd[0] = start + emit[0]
    for i in range(1, n):
        fwd[i] = logsumexp(fwd[i - 1][:, None] + trans[i - 1], axis=0) + emit[i]
    bwd = np.zeros((n, K))
    for i in range(n - 2, -1, -1):
        bwd[i] = logsumexp(trans[i] + (emit[i + 1] + bwd[i + 1])[None, :], axis=1)
    total = float(logsumexp(fwd[-1]))
    post = np.exp(fwd + bwd - total)
    post /= post.sum(1, keepdims=True)

    labels = [SPINE_ORDER[k] for k in path]
    skips = [
        i for i in range(n - 1)
        if skip[path[i], path[i + 1]] + g_skip[i] > step[path[i], path[i + 1]] + g_norm[i]
    ]
    conf = post[np.arange(n), path]
    return Decoded(labels, conf, post, skips, total)
