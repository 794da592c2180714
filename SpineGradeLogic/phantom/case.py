"""`generate_case` and `write_case`: one synthetic spine MRI study with its ground truth."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from scipy.ndimage import find_objects

from ..errors import InputError
from ..io.volume import Volume
from ..results.folder import write_volume
from ..results.model import Box, Disc, InputInfo, StudyResult, Vertebra
from . import tissues as T
from .acquisition import FOVS, plan_acquisition
from .axial import plan_axial
from .anatomy import DiscShape, SpineLayout, build_layout, vertebra_names
from .bone import paint_spine
from .canal import canal_profile
from .canvas import Canvas
from .config import PhantomConfig
from .contrast import sequence_protocol, signal_table
from .curve import SpineCurve, build_curve
from .grading import grade_level
from .imaging import acquire, anatomy_box, warp_to_ras
from .lesions import paint_lesions
from .pathology import DiscPathology, draw_pathology
from .soft import Habitus, paint_canal, paint_organs, paint_torso

CONTRASTS = ("T1", "T2", "STIR", "random")
TRANSITIONAL = ("L6", "T13", "sacralised_L5")


@dataclass
class PhantomCase:
    """One generated study.

    Attributes:
        image: float32 sagittal series (``Volume``; slices thick along left-right, maybe oblique).
        labels: int16 label map in the same geometry (values of `SpineGradeLogic.names`).
        truth: the ground truth as a `StudyResult` (what a perfect pipeline run would report).
        sequence: "T1", "T2", "STIR", or for random contrast the base it was drawn around ("unknown" if none).
        tissues: int16 tissue classes (`phantom.tissues`) in the same geometry.
        seed, fov, contrast: how it was made.
        protocol: TR/TE/TI, description and other header values for the DICOM writer.
        pathology: level -> the drawn `DiscPathology`.
        anatomy: the 1 mm RAS anatomy grid the series was imaged from (``label * 32 + tissue``;
            split with `tissues.label_of` / `tissues.tissue_of`).
        axial: the study's axial T2 stack (float32 ``Volume``) when asked for, imaged from the same
            anatomy (``phantom/axial.py``); ``axial_protocol`` its header values.
    """

    image: Volume
    labels: Volume
    truth: StudyResult
    sequence: str
    tissues: Volume
    seed: int
    fov: str
    contrast: str
    protocol: Dict[str, object] = field(default_factory=dict)
    pathology: Dict[str, DiscPathology] = field(default_factory=dict)
    timing_s: Dict[str, float] = field(default_factory=dict)
    anatomy: Optional[Volume] = None  # the 1 mm RAS anatomy, voxels = label * 32 + tissue
    axial: Optional[Volume] = None  # the axial T2 series (``generate_case(axial=True)``), else None
    axial_protocol: Dict[str, object] = field(default_factory=dict)


def _check(seed, fov: str, contrast: str) -> None:
    if fov not in FOVS:
        raise InputError(f"unknown field of view {fov!r}: use one of {', '.join(FOVS)}")
    if contrast not in CONTRASTS:
        raise InputError(f"unknown contrast {contrast!r}: use one of {', '.join(CONTRASTS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")


def _apply_slips(layout: SpineLayout, path: Dict[str, DiscPathology]) -> None:
    """Anterolisthesis at a level carries every vertebra above it forward."""
    shift = 0.0
    by_upper = {d.upper: d for d in layout.discs}
    for v in layout.vertebrae:  # inferior first
        v.offset = shift
        d = by_upper.get(v.name)
        if d is not None:
            v.offset = shift = shift + path[d.level].slip_mm


def _flavum_profile(layout: SpineLayout, s: np.ndarray, path: Dict[str, DiscPathology]) -> np.ndarray:
    t = np.full_like(s, 2.5)
    for d in layout.discs:
        up = layout.vertebra(d.upper)
        extra = path[d.level].flavum_mm - 2.5
        if extra > 0:
            w = np.clip(1 - np.abs(s - d.s_mid) / (d.height / 2 + 0.35 * up.H), 0, 1)
            t = np.maximum(t, 2.5 + extra * np.clip(w * 1.6, 0, 1))
    return t


@dataclass
class Anatomy:
    """Everything before imaging: the straightened canvas, its bent 1 mm RAS grid and the plan."""

    layout: SpineLayout
    curve: SpineCurve
    canvas: Canvas
    profile: object
    grid: object
    acquisition: object
    axial: object  # the axial stack's Acquisition, or None
    pathology: Dict[str, DiscPathology]
    graded: Dict[str, tuple]
    transitional: str
    timing: Dict[str, float]


def build_anatomy(seed: int, fov: str, config: PhantomConfig, axial: bool = False) -> Anatomy:
    """Draw and paint the anatomy of case ``seed`` and plan its series (no contrast yet); with
    ``axial``, plan an axial stack too and paint the anatomy wide enough for it."""
    t0 = time.perf_counter()
    streams = np.random.SeedSequence([int(seed), 20260501]).spawn(5)
    anat, path_rng, acq_rng, _, lesion_rng = (np.random.default_rng(s) for s in streams)
    transitional = "none"
    if anat.random() < config.transitional_share:
        transitional = str(anat.choice(TRANSITIONAL))
    names = vertebra_names(transitional)
    levels = [f"{u}/{l}" for u, l in zip(names[1:-1], names[2:])]  # no C1/C2 disc
    unknown = set(config.levels) - set(levels)
    if unknown:
        raise InputError(f"pathology forced at level(s) this spine does not have: {', '.join(sorted(unknown))}")
    path = draw_pathology(path_rng, levels, config)
    scale = anat.uniform(*config.size_scale)
    layout = build_layout(anat, scale, transitional, {k: p.height_ratio for k, p in path.items()})
    if transitional == "sacralised_L5":
        path["L5/S1"].hydration = min(path["L5/S1"].hydration, 0.3)
    _apply_slips(layout, path)
    curve = build_curve(anat, layout, config)
    habitus = Habitus.draw(anat, config, scale)
    acq = plan_acquisition(acq_rng, layout, curve, fov, config)
    # its own stream: asking for the axial stack leaves the sagittal plan as it was
    ax_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20260501, 7]))
    ax = plan_axial(ax_rng, layout, curve, config) if axial else None
    t_plan = time.perf_counter()
    # the straightened canvas only as large as the imaged volumes need
    lo, shape = anatomy_box(acq)
    if ax is not None:
        lo2, shape2 = anatomy_box(ax)
        hi = np.maximum(lo + shape, lo2 + shape2)
        lo = np.minimum(lo, lo2)
        shape = (hi - lo).astype(int)
    ys, zs = lo[1] + np.arange(shape[1]), lo[2] + np.arange(shape[2])
    Y, Z = np.meshgrid(ys[::4], zs[::4], indexing="ij")
    n, s, g = curve.straighten_plane(Y, Z)
    s_lo, s_hi = s.min() - 8, s.max() + 8
    imaged = [d for d in layout.discs if s_lo <= d.s_mid <= s_hi]
    for d in imaged:  # every imaged level with both its vertebrae whole, for grading
        s_lo = min(s_lo, layout.segment(d.lower).s_bot - 3)
        s_hi = max(s_hi, layout.segment(d.upper).s_top + 3)
    s_lo, s_hi = max(0.0, s_lo), min(layout.length, s_hi)
    n_lo, n_hi = max(-200.0, n.min() - 8), min(300.0, n.max() + 8)
    u_lo = lo[0] - g.max() - curve.x0 - 2
    u_hi = lo[0] + shape[0] - g.min() - curve.x0 + 2
    cv = Canvas((u_lo, u_hi), (n_lo, n_hi), (s_lo, s_hi))
    prof = canal_profile(layout, cv.axis("s"))
    paint_torso(cv, layout, prof, habitus)
    paint_organs(cv, layout, prof, habitus)
    paint_canal(cv, layout, prof, _flavum_profile(layout, prof.s, path))
    paint_spine(cv, layout, prof, path)
    paint_lesions(cv, layout, path, lesion_rng)
    t_paint = time.perf_counter()
    graded = {d.level: grade_level(cv, prof, layout, d, path[d.level]) for d in layout.discs
              if s_lo <= d.s_mid <= s_hi}
    grid = warp_to_ras(cv, curve, lo, shape)
    t_warp = time.perf_counter()
    timing = {"plan": t_plan - t0, "paint": t_paint - t_plan, "grade_warp": t_warp - t_paint}
    return Anatomy(layout, curve, cv, prof, grid, acq, ax, path, graded, transitional, timing)


def generate_case(seed: int, fov: str = "lumbar", contrast: str = "T2", config: Optional[PhantomConfig] = None,
                  axial: bool = False) -> PhantomCase:
    """Generate one synthetic sagittal spine MRI study with its labels and ground-truth grades.

    Args:
        seed: makes the case; the same seed, fov, contrast and config give the same case.
            Anatomy and pathology do not depend on ``contrast``, so T1/T2/STIR of one seed pair up.
        fov: "lumbar" (T12-sacrum at least), "thoracolumbar" (about T8-sacrum) or "whole" (C1-sacrum).
        contrast: "T1", "T2", "STIR" or "random" (SynthSeg-style domain randomisation).
        config: randomisation ranges and forced pathology; defaults to `PhantomConfig()`.
        axial: also image an axial T2 stack over the lumbar discs (``PhantomCase.axial``). The
            anatomy is painted wider for it, so the sagittal image's texture and noise differ from
            the case without one; anatomy, pathology and grades do not.

    Raises:
        InputError: for an unknown ``fov`` or ``contrast`` or a bad seed.
    """
    _check(seed, fov, contrast)
    config = config or PhantomConfig()
    t0 = time.perf_counter()
    a = build_anatomy(seed, fov, config, axial)
    layout, curve, grid, acq, path, graded = a.layout, a.curve, a.grid, a.acquisition, a.pathology, a.graded
    img_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20260501]).spawn(5)[3])
    t_warp = time.perf_counter()
    randomise = contrast == "random"
    if randomise:
        base = str(img_rng.choice(["T1", "T2", "STIR", "unknown", "unknown"]))
    else:
        base = contrast
    lut, texture = signal_table(base, img_rng, {d.label: path[d.level] for d in layout.discs}, randomise)
    image, labels, tissues = acquire(grid, acq, lut, texture, img_rng, config, randomise)
    t_img = time.perf_counter()
    geom = acq.geometry
    image_v = geom.with_array(image)
    labels_v = geom.with_array(labels)
    tissues_v = geom.with_array(tissues)
    protocol = sequence_protocol(base, img_rng)
    protocol.update(thickness=acq.thickness, gap=acq.gap, fov_mm=acq.fov_mm)
    truth = _truth(seed, fov, contrast, base, layout, curve, grid, labels_v, graded, path, a.transitional, protocol)
    axial_v, axial_protocol = None, {}
    if a.axial is not None:
        axial_v, axial_protocol = _image_axial(seed, a, path, config, randomise)
        truth.extra["phantom"]["axial"] = {"image": "axial.nii.gz", "shape": list(axial_v.shape),
                                           "spacing_mm": [round(float(x), 4) for x in axial_v.spacing]}
    timing = {**a.timing, "image": t_img - t_warp, "total": time.perf_counter() - t0}
    truth.timing_s = dict(timing)
    return PhantomCase(image_v, labels_v, truth, base, tissues_v, int(seed), fov, contrast, protocol, path, timing,
                       grid.volume(grid.packed), axial_v, axial_protocol)


def _image_axial(seed: int, a: Anatomy, path, config: PhantomConfig, randomise: bool):
    """The axial stack: always T2 weighted (what clinical protocols pair with the sagittals), drawn
    with its own signal, noise and bias, domain-randomised when the case's contrast is."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20260501, 8]))
    lut, texture = signal_table("T2", rng, {d.label: path[d.level] for d in a.layout.discs}, randomise)
    image, _, _ = acquire(a.grid, a.axial, lut, texture, rng, config, randomise)
    protocol = sequence_protocol("T2", rng)
    protocol.update(thickness=a.axial.thickness, gap=a.axial.gap, fov_mm=a.axial.fov_mm, description="AX T2 TSE")
    return a.axial.geometry.with_array(image), protocol


def _inside(geom: Volume, ras: np.ndarray) -> bool:
    ijk = geom.ras_to_index(ras)
    return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.array(geom.shape) - 0.5))


def _truth(seed, fov, contrast, base, layout: SpineLayout, curve: SpineCurve, grid, labels: Volume, graded,
           path, transitional, protocol) -> StudyResult:
    present = set(np.unique(labels.array).tolist())
    boxes = find_objects(grid.packed >> T.TISSUE_BITS)

    def bbox(label: int) -> Optional[Box]:
        if label - 1 >= len(boxes) or boxes[label - 1] is None:
            return None
        sl = boxes[label - 1]
        lo = np.array([x.start for x in sl], float)
        hi = np.array([x.stop - 1 for x in sl], float)
        return Box.around(grid.origin_ras + np.stack([lo, hi]))

    verts = []
    for v in reversed(layout.vertebrae):  # superior first
        s_c = v.s_mid if v.name != "S1" else v.s_top - 0.15 * (v.s_top - v.s_bot)
        n_c = v.offset + (5.0 if v.name == "C1" else 0.0)
        c = curve.to_ras(0.0, n_c, s_c)
        if v.label in present and _inside(labels, c):
            verts.append(Vertebra(v.name, tuple(c), 1.0, bbox(v.label)))
    discs = []
    for d in reversed(layout.discs):
        if d.level not in graded:
            continue
        off = 0.5 * (layout.vertebra(d.upper).offset + layout.vertebra(d.lower).offset)
        c = curve.to_ras(0.0, off, d.s_mid)
        if d.label not in present or not _inside(labels, c):
            continue
        grades, measured = graded[d.level]
        extra = {"measurements": measured, "pathology": path[d.level].to_dict()}
        if d.rudimentary:
            extra["rudimentary"] = True
        discs.append(Disc(d.level, tuple(c), grades, tuple(curve.tangent_ras(d.s_mid)), bbox(d.label), extra=extra))
    info = InputInfo("image.nii.gz", labels.shape, labels.spacing, protocol_uid(seed, fov, contrast),
                     base if base in ("T1", "T2", "STIR") else "unknown",
                     extra={"description": protocol.get("description")})
    extra = {"phantom": {"seed": int(seed), "fov": fov, "contrast": contrast, "transitional": transitional,
                         "slice_thickness_mm": round(protocol["thickness"], 3), "slice_gap_mm": round(protocol["gap"], 3),
                         "conus_mm": [round(x, 2) for x in curve.to_ras(0.0, 0.0, layout.conus_s).tolist()]}}
    return StudyResult(info, verts, discs, [], [], segmentation="labels.nii.gz", extra=extra)


def protocol_uid(seed: int, fov: str, contrast: str, what: str = "series") -> str:
    """A DICOM UID that is the same every time for this case: ``2.25.`` + a name-based UUID."""
    import uuid

    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, f"spinegrade-phantom/{seed}/{fov}/{contrast}/{what}").int)


def write_case(case: PhantomCase, out_dir, dicom: bool = False) -> Path:
    """Write ``image.nii.gz``, ``labels.nii.gz``, ``tissues.nii.gz``, ``truth.json``, the axial stack
    as ``axial.nii.gz`` where the case has one, and with ``dicom`` the study as DICOM (``dicom/``, the
    axial series in ``dicom/axial/``).

    ``truth.json`` is checked against the result schema before it is written.
    """
    from ..results.validate import validate_result_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = case.truth.to_dict()
    validate_result_dict(data)
    write_volume(case.image, out / "image.nii.gz")
    write_volume(case.labels, out / "labels.nii.gz")
    write_volume(case.tissues, out / "tissues.nii.gz")
    if case.axial is not None:
        write_volume(case.axial, out / "axial.nii.gz")
    if dicom:
        from .dicom import write_dicom_series

        write_dicom_series(case, out / "dicom")
        if case.axial is not None:  # the same study, a second series
            write_dicom_series(case, out / "dicom" / "axial", axial=True)
    (out / "truth.json").write_text(json.dumps(data, indent=2, allow_nan=False))
    return out
