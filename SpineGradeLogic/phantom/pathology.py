"""Draw the pathology of every disc level (random by prevalence, or forced by `LevelPathology`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Dict, List

import numpy as np

from .config import LevelPathology, PhantomConfig

SIDES = ("central", "left", "right", "foraminal_left", "foraminal_right")

# Severity ranges of the random draw (mm unless said). They reach the severe grades: a disc down to
# 12 % of its height (narrowing 3 below 35 %), herniations and ligamentum flavum thick enough, with
# facets, to take more than two thirds of the dural sac or a foramen (stenosis 3).
HEIGHT_RATIO_DRAW = (0.15, 1.05)  # plus 0.3 x hydration, clipped to HEIGHT_RATIO_MIN..1
HEIGHT_RATIO_MIN = 0.12
HERNIATION_MM = (2.0, 12.0)
FLAVUM_MM = (3.5, 8.5)
FACET_MM = (1.0, 8.0)


@dataclass
class DiscPathology:
    """Resolved pathology of one level (all fields set; 0 means absent)."""

    height_ratio: float = 1.0
    hydration: float = 1.0
    bulge_mm: float = 0.0
    herniation_mm: float = 0.0
    herniation_side: str = "central"
    herniation_width_mm: float = 12.0
    slip_mm: float = 0.0
    upper_endplate_defect_mm: float = 0.0
    lower_endplate_defect_mm: float = 0.0
    modic: int = 0
    flavum_mm: float = 2.5
    facet_left_mm: float = 0.0
    facet_right_mm: float = 0.0

    def to_dict(self) -> Dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _region_weight(level: str) -> float:
    """Degeneration is a lumbar (and lower cervical) disease; thoracic levels get a third."""
    upper = level.split("/")[0]
    if upper.startswith("L") or upper == "T12" or upper == "T13":
        return 1.0
    if upper in ("C4", "C5", "C6"):
        return 0.6
    return 0.33


def draw_pathology(rng: np.random.Generator, levels: List[str], config: PhantomConfig) -> Dict[str, DiscPathology]:
    """One `DiscPathology` per level; ``config.levels`` overrides win over the random draw.

    The random stream is consumed identically whatever the overrides, so forcing one level
    leaves the others as they were for the same seed.
    """
    out: Dict[str, DiscPathology] = {}
    for level in levels:
        w = 0.0 if config.healthy else _region_weight(level)
        r = rng.random(12)
        p = DiscPathology()
        age_hyd = rng.uniform(0.85, 1.0)
        p.hydration = age_hyd
        if r[0] < config.degeneration * w:
            # Pfirrmann 2-5: dehydration, often with height loss
            p.hydration = float(rng.uniform(0.05, 0.8))
            p.height_ratio = float(np.clip(rng.uniform(*HEIGHT_RATIO_DRAW) + 0.3 * p.hydration, HEIGHT_RATIO_MIN, 1.0))
        else:
            rng.uniform(size=2)
        if r[1] < config.bulge * w:
            p.bulge_mm = float(rng.uniform(1.0, 4.0))
        if r[2] < config.herniation * w:
            p.herniation_mm = float(rng.uniform(*HERNIATION_MM))
            p.herniation_side = str(rng.choice(SIDES, p=[0.35, 0.2, 0.2, 0.125, 0.125]))
            p.herniation_width_mm = float(rng.uniform(8.0, 16.0))
        else:
            rng.uniform(size=2)
        if r[3] < config.listhesis * w * (3.0 if level in ("L4/L5", "L5/S1") else 0.5):
            p.slip_mm = float(rng.uniform(2.0, 9.0))
        if r[4] < config.endplate_defect * w:
            p.upper_endplate_defect_mm = float(rng.uniform(1.0, 5.0))
        if r[5] < config.endplate_defect * w:
            p.lower_endplate_defect_mm = float(rng.uniform(1.0, 5.0))
        if r[6] < config.modic * w:
            p.modic = int(rng.choice([1, 2, 3], p=[0.3, 0.6, 0.1]))
        if r[7] < config.flavum * w:
            p.flavum_mm = float(rng.uniform(*FLAVUM_MM))
        if r[8] < config.facet * w:
            p.facet_left_mm = float(rng.uniform(*FACET_MM))
        if r[9] < config.facet * w:
            p.facet_right_mm = float(rng.uniform(*FACET_MM))
        forced = config.levels.get(level)
        if forced is not None:
            for f in fields(LevelPathology):
                v = getattr(forced, f.name)
                if v is not None:
                    setattr(p, f.name, v)
        if p.herniation_side not in SIDES:
            from ..errors import InputError

            raise InputError(f"herniation_side must be one of {', '.join(SIDES)}, got {p.herniation_side!r}")
        out[level] = p
    return out
