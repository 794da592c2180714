"""Training and evaluation crops from the synthetic spine generator, prepared once into npz caches.

Each generated case gives one crop per ground-truth disc level, cut at the TRUTH disc centre and
normal (localisation error is simulated later, on the training device, by random rigid jitter: see
``data.Augment``). This module imports SimpleITK and the phantom; training itself never does.

Profiles (what a seed is generated with):

* ``train``: domain-randomised contrast on half the cases (T1 / T2 / STIR on the rest) and
  pathology prevalences raised well above the generator's defaults, with Modic types forced at
  some lumbar levels, so that rare grades are seen often enough.
* ``calibration`` and ``eval``: the generator's default prevalences (what a user's population is
  assumed to look like) and the same contrast mix; for early stopping and temperature fitting, and
  for the final measurement. Use disjoint seed ranges (the CLI's defaults: train from 0, calibration
  from 100000, evaluation from 200000).

In every profile ``AXIAL_SHARE`` of the cases also hold an axial T2 stack (``phantom/axial.py``); their
crops carry the axial channel (``data.axial_channel``), the others mark it absent.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..names import HEAD_NAMES
from .data import CropSet, axial_channel, cache_name, normalise_crop, quantise_crop
from .measures import measures_of

log = logging.getLogger("spinegrade")

PROFILES = ("train", "calibration", "eval")
CONTRAST_MIX = (("random", 0.5), ("T2", 0.2), ("T1", 0.2), ("STIR", 0.1))
AXIAL_SHARE = 0.7  # share of generated studies that also hold an axial T2 stack (every profile)
ALWAYS_PRESENT = ("L1/L2", "L2/L3", "L3/L4", "L4/L5")  # levels every generated lumbar spine has


def truth_frame(normal: Sequence[float]) -> np.ndarray:
    """Disc frame (columns left, posterior, superior; RAS) from a normal, posterior from left-right
    (as ``SpineCurve.frame`` does without a canal)."""
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    right = np.array([1.0, 0.0, 0.0]) - n[0] * n
    right /= np.linalg.norm(right)
    post = np.cross(right, n)
    left = np.cross(post, n)
    return np.stack([left, post, n], axis=1)


def truth_location(disc):
    """A :class:`DiscLocation` at a ground-truth disc (``Disc`` with ``center_mm`` and ``normal``)."""
    from ..discs.localise import DiscLocation

    return DiscLocation(disc.level, np.asarray(disc.center_mm, float), truth_frame(disc.normal),
                        np.array([20.0, 16.0, 5.0]))


def case_axial(seed: int, profile: str) -> bool:
    """Whether case ``seed`` of ``profile`` is generated with an axial T2 stack (its own draw, so
    that adding the stack left every seed's contrast and pathology as they were)."""
    rng = np.random.default_rng([int(seed), 434343, PROFILES.index(profile)])
    return bool(rng.random() < AXIAL_SHARE)


def case_settings(seed: int, profile: str):
    """(contrast, PhantomConfig) of case ``seed`` under ``profile`` (deterministic in the seed)."""
    from ..phantom import LevelPathology, PhantomConfig

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    rng = np.random.default_rng([int(seed), 424242, PROFILES.index(profile)])
    names, p = zip(*CONTRAST_MIX)
    contrast = str(rng.choice(names, p=p))
    if profile != "train":
        return contrast, PhantomConfig()
    cfg = PhantomConfig(degeneration=0.6, bulge=0.35, herniation=0.35, listhesis=0.3, endplate_defect=0.25,
                        modic=0.3, flavum=0.35, facet=0.4)
    forced = {}
    for level in ALWAYS_PRESENT:
        if rng.random() < 0.15:
            forced[level] = LevelPathology(modic=int(rng.integers(1, 4)))
    return contrast, replace(cfg, levels=forced)


def crops_of_case(case, contrast: str) -> CropSet:
    """One normalised crop per ground-truth disc of a generated case (with its axial crop where the
    case has an axial stack)."""
    from ..discs.crop import CropSampler

    sagittal = CropSampler(case.image)
    axial = CropSampler(case.axial) if case.axial is not None else None
    imgs, axials, grades, levels, outside = [], [], [], [], []
    for d in case.truth.discs:
        loc = truth_location(d)
        crop = sagittal.crop(loc)
        x = normalise_crop(crop.image.array, crop.inside)
        imgs.append(quantise_crop(x))
        axials.append(axial_channel(axial.crop(loc)) if axial is not None else None)
        grades.append([d.grades[h].grade for h in HEAD_NAMES])
        levels.append(d.level)
        outside.append(crop.outside_fraction)
    n = len(imgs)
    if n == 0:
        return CropSet.empty()
    axial = np.stack(axials) if case.axial is not None else None  # None: the set marks it absent
    return CropSet(np.stack(imgs), np.asarray(grades, np.int64), np.asarray(levels, str), np.asarray(outside, np.float32),
                   np.full(n, case.seed, np.int64), np.full(n, contrast, dtype="<U8"), axial=axial,
                   measures=measures_of(case.truth.discs))


def prepare_case(seed: int, profile: str = "train", fov: str = "lumbar") -> CropSet:
    from ..phantom import generate_case

    contrast, cfg = case_settings(seed, profile)
    case = generate_case(int(seed), fov, contrast, cfg, axial=case_axial(seed, profile))
    return crops_of_case(case, contrast)


def _prepare_one(args: Tuple[int, str, str]) -> Tuple[int, int, float]:
    seed, profile, folder = args
    path = Path(folder) / cache_name(profile, seed)
    if path.is_file():
        return seed, -1, 0.0
    t0 = time.perf_counter()
    crops = prepare_case(seed, profile)
    crops.save(path)
    return seed, len(crops), time.perf_counter() - t0


def _init_worker() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def prepare_seeds(seeds: Iterable[int], profile: str, folder: Path, workers: int = 1) -> List[Path]:
    """Prepare (or reuse) the cache file of every seed; returns their paths. ``workers`` processes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in seeds]
    jobs = [(s, profile, str(folder)) for s in seeds]
    t0 = time.perf_counter()
    done = crops = 0
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            results = pool.imap_unordered(_prepare_one, jobs)
            for seed, n, dt in results:
                done, crops = done + 1, crops + max(n, 0)
                if n >= 0:
                    log.info("prepared %s seed %d: %d crops in %.1f s", profile, seed, n, dt)
    else:
        _init_worker()
        for job in jobs:
            seed, n, dt = _prepare_one(job)
            done, crops = done + 1, crops + max(n, 0)
    el = time.perf_counter() - t0
    if crops:
        log.info("%s: %d cases, %d new crops in %.0f s (%.2f crops/s)", profile, done, crops, el, crops / max(el, 1e-9))
    return [folder / cache_name(profile, s) for s in seeds]


def parse_seeds(text: Optional[str]) -> List[int]:
    """``"A:B"`` (B excluded) or ``"A,B,C"`` -> seeds."""
    if not text:
        return []
    if ":" in text:
        a, b = text.split(":", 1)
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",") if s.strip()]


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 16))
