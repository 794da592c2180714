"""`PhantomConfig`: what the synthetic spine generator randomises, and per-level pathology overrides.

Every range is ``(low, high)`` and drawn uniformly per case. Defaults describe adult spines and
ordinary clinical sagittal protocols; tests shrink the images (``PhantomConfig.small()``) and force
pathology with ``levels={"L4/L5": LevelPathology(height_ratio=0.4)}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Tuple

Range = Tuple[float, float]


@dataclass
class LevelPathology:
    """Pathology forced at one disc level; ``None`` leaves a field to the random draw.

    Args:
        height_ratio: disc height as a fraction of this level's healthy height (1.0 = normal).
        hydration: nucleus water signal, 1.0 = young healthy nucleus, 0.0 = black disc.
        bulge_mm: circumferential bulge beyond the vertebral body margins.
        herniation_mm: depth of a focal herniation beyond the posterior disc margin (0 = none).
        herniation_side: lateral position of the herniation: "central", "left", "right",
            "foraminal_left" or "foraminal_right".
        herniation_width_mm: its width (lateral extent) at the base.
        slip_mm: anterolisthesis of the upper vertebra over the lower one.
        upper_endplate_defect_mm, lower_endplate_defect_mm: depth of a Schmorl node in the endplate
            above / below the disc (0 = none).
        modic: Modic type 0-3 in the marrow either side of the disc.
        flavum_mm: ligamentum flavum thickness (normal about 2.5 mm).
        facet_left_mm, facet_right_mm: facet (superior articular process) hypertrophy, mm of growth
            forward and medially into the foramen and lateral recess.
    """

    height_ratio: Optional[float] = None
    hydration: Optional[float] = None
    bulge_mm: Optional[float] = None
    herniation_mm: Optional[float] = None
    herniation_side: Optional[str] = None
    herniation_width_mm: Optional[float] = None
    slip_mm: Optional[float] = None
    upper_endplate_defect_mm: Optional[float] = None
    lower_endplate_defect_mm: Optional[float] = None
    modic: Optional[int] = None
    flavum_mm: Optional[float] = None
    facet_left_mm: Optional[float] = None
    facet_right_mm: Optional[float] = None


@dataclass
class PhantomConfig:
    """Randomisation ranges of the generator (anatomy, protocol, pathology prevalence).

    Args:
        transitional_share: share of cases with transitional anatomy (L6, T13 or sacralised L5).
        size_scale: person scale factor applied to all vertebra and canal sizes.
        lordosis_deg, kyphosis_deg, cervical_lordosis_deg, sacral_slope_deg: sagittal curves.
        scoliosis_share, scoliosis_mm: share of cases with a lateral curve and its amplitude.
        slice_thickness_mm, slice_gap_share: slice thickness and the gap as a share of it.
        coverage_mm: left-right extent the slices cover (slice count = coverage / spacing).
        pixel_mm: in-plane pixel size; ``whole``-spine fields of view use ``pixel_mm_whole``.
        oblique_deg: largest rotation of the slice planes away from true sagittal.
        fov_margin_mm: extra head-foot field of view beyond the vertebrae the FOV must show.
        axial_pixel_mm, axial_thickness_mm: the axial T2 stack's pixel size and slice thickness
            (only when a case is generated with ``axial=True``; see ``phantom/axial.py``).
        axial_fov_mm: its in-plane field of view (left-right and anterior-posterior), centred on the spine.
        axial_tilt_deg: largest tilt of the stack towards the lumbar discs.
        axial_lower_share: share of axial stacks that cover only L3/L4 to L5/S1.
        degeneration: per-level chance of a degenerated disc (lumbar; thoracic/cervical get a third).
        bulge, herniation, listhesis, endplate_defect, modic, flavum, facet: per-level prevalences.
        subcut_fat_mm: posterior subcutaneous fat thickness.
        noise_sd: Rician noise level relative to the brightest tissue.
        ghosting_share: share of cases with motion ghosts (all contrast modes).
        levels: per-level pathology forced by the caller, e.g. ``{"L4/L5": LevelPathology(...)}``.
        healthy: no random pathology at all (overrides in ``levels`` still apply).
    """

    transitional_share: float = 0.15
    size_scale: Range = (0.9, 1.1)
    lordosis_deg: Range = (35.0, 65.0)
    kyphosis_deg: Range = (20.0, 50.0)
    cervical_lordosis_deg: Range = (10.0, 35.0)
    sacral_slope_deg: Range = (30.0, 48.0)
    scoliosis_share: float = 0.2
    scoliosis_mm: Range = (3.0, 15.0)
    slice_thickness_mm: Range = (3.0, 4.5)
    slice_gap_share: Range = (0.0, 0.1)
    coverage_mm: Range = (50.0, 75.0)
    pixel_mm: Range = (0.6, 1.1)
    pixel_mm_whole: Range = (1.0, 1.4)
    oblique_deg: float = 8.0
    fov_margin_mm: Range = (15.0, 60.0)
    axial_pixel_mm: Range = (0.55, 0.9)
    axial_thickness_mm: Range = (3.0, 5.0)
    axial_fov_mm: Range = (100.0, 140.0)
    axial_tilt_deg: float = 15.0
    axial_lower_share: float = 0.3
    degeneration: float = 0.35
    bulge: float = 0.2
    herniation: float = 0.15
    listhesis: float = 0.06
    endplate_defect: float = 0.1
    modic: float = 0.12
    flavum: float = 0.12
    facet: float = 0.15
    subcut_fat_mm: Range = (6.0, 35.0)
    noise_sd: Range = (0.01, 0.04)
    ghosting_share: float = 0.15
    levels: Dict[str, LevelPathology] = field(default_factory=dict)
    healthy: bool = False

    def with_levels(self, **levels: LevelPathology) -> "PhantomConfig":
        """A copy with pathology forced at levels given as ``L4_L5=LevelPathology(...)``."""
        merged = dict(self.levels)
        merged.update({k.replace("_", "/"): v for k, v in levels.items()})
        return replace(self, levels=merged)

    @classmethod
    def small(cls, **kw) -> "PhantomConfig":
        """A fast configuration for tests: coarse pixels, few thick slices, no transitional anatomy."""
        base = dict(pixel_mm=(1.2, 1.2), pixel_mm_whole=(1.6, 1.6), coverage_mm=(30.0, 30.0),
                    slice_thickness_mm=(5.0, 5.0), transitional_share=0.0, oblique_deg=3.0,
                    axial_pixel_mm=(1.2, 1.2), axial_fov_mm=(100.0, 100.0))
        base.update(kw)
        return cls(**base)
