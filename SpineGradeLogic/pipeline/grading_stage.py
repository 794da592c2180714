"""The grading and saliency stages: disc crops -> calibrated grades -> heatmaps in the input's geometry.

Both find the ``spinegrade_grading`` bundle when they run (``RunOptions.bundles`` >
``$SPINEGRADE_GRADING_BUNDLE`` > ``Resources/Models/spinegrade_grading``); without one they add the
same "no model is installed" warning as a pending stage and produce nothing.

Crops partly outside the field of view (a level at the edge of the image): more than
``MAX_OUTSIDE`` (30 %) of the crop outside -> the level is not graded, with a warning; more than
``WARN_OUTSIDE`` (10 %) -> graded, with a warning. Never an exception.

Axial T2 (a 3-channel model such as the shipped 0.8.0; for a 1-channel one, 0.1.0 and 0.2.0, no axial
series is read): the series named by ``RunOptions.axial``, else the study's own axial series in the
sagittal series' frame of reference (``io/axial.py``), is cut on every level's crop grid through
world coordinates and given to the model beside the sagittal crop; each
graded disc records the share of its crop the axial slices cover (``disc.extra["axial_coverage"]``,
0 where none reach) and ``input.extra["axial_series"]`` says which series it was. Without one, or
with ``RunOptions.use_axial`` off, levels are graded from the sagittal crop alone. An axial series
that cannot be read is a warning, never a failed run.

The grade shown is chosen at ``RunOptions.sensitivity`` (``grading/decision.py``; 0, the default, is the
most probable grade; the probabilities do not depend on it); ``result.extra["grading"]["sensitivity"]``
records it, and heads the bundle has no grade shares for keep their most probable grade, with a warning.

Saliency (``RunOptions.saliency``): ``"default"`` makes one map per level, for the level's most
abnormal head (highest probability of a non-normal class; Pfirrmann 1-2 count as normal), explaining
the grade shown or, where that is normal, the most probable abnormal grade; ``"all"`` makes one
per requested head; ``"none"`` makes none. ``RunOptions.saliency_methods`` lists the methods (``saliency/methods.py``;
``auto``, the default, is IG for the signal heads and SmoothGrad for the others; the first one's map is
``disc.saliency[head]``, others ``disc.saliency["head:method"]``, always by concrete method name). Heatmaps go to
``ctx.heatmaps[heatmap_path(level, head, method)]``.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..names import HEADS
from ..results.folder import heatmap_path
from .context import StudyContext, log
from .stages import Stage

BUNDLE = "spinegrade_grading"
MAX_OUTSIDE = 0.3
WARN_OUTSIDE = 0.1
BATCH = 16


def grader_for(ctx: StudyContext):
    """The run's grading model, loaded once and kept in ``ctx.artifacts["grader"]``; None if not installed."""
    if "grader" in ctx.artifacts:
        return ctx.artifacts["grader"]
    from ..models.bundle import find_bundle

    path = find_bundle(BUNDLE, ctx.options.bundles.get(BUNDLE))
    grader = None
    if path is not None:
        from ..grading.infer import Grader

        grader = Grader.load(path, ctx.options.device)
        if not any(m.name == grader.model.name for m in ctx.result.models):
            ctx.result.models.append(grader.model.model_info)
    ctx.artifacts["grader"] = grader
    return grader


def axial_for(ctx: StudyContext, grader):
    """The axial series the grader reads (an :class:`~SpineGradeLogic.io.axial.AxialSeries`), or None;
    found once per run and kept in ``ctx.artifacts["axial"]``. Nothing is read for a sagittal-only
    model."""
    if "axial" in ctx.artifacts:
        return ctx.artifacts["axial"]
    from ..io.axial import load_axial, pick_axial_series, read_axial_series

    opts, found = ctx.options, None
    ctx.result.input.extra.pop("axial_series", None)  # a regraded result says what this run used
    if opts.use_axial and not grader.uses_axial and opts.axial is not None:
        ctx.warn("disc grading: the installed grading model reads sagittal crops only; the axial series was not used")
    elif opts.use_axial and grader.uses_axial:
        try:
            if opts.axial is not None:
                found = load_axial(opts.axial)
            elif ctx.study is not None and ctx.study.series:
                chosen = ctx.study.chosen_series()
                frame = chosen.headers.get("FrameOfReferenceUID") if chosen is not None else None
                info = pick_axial_series(ctx.study.other_series("axial"), frame)
                found = read_axial_series(info) if info is not None else None
        except Exception as e:  # noqa: BLE001 - any unreadable axial series: grade from the sagittal alone
            ctx.warn(f"disc grading: the axial series could not be used ({e}); "
                     "levels graded from the sagittal series alone")
            found = None
    if found is not None:
        ctx.result.input.extra["axial_series"] = found.summary()
        if found.sequence not in ("T2", "unknown"):
            ctx.warn(f"disc grading: the axial series is {found.sequence}, the model learned axial T2; "
                     "treat the stenosis grades with care")
    ctx.artifacts["axial"] = found
    return found


def _heads(ctx: StudyContext) -> List[str]:
    heads = [h for h in (ctx.options.heads or list(HEADS)) if h in HEADS]
    unknown = [h for h in (ctx.options.heads or []) if h not in HEADS]
    if unknown:
        ctx.warn(f"disc grading: unknown head(s) {', '.join(unknown)} ignored")
    return heads


class GradingStage(Stage):
    name = "grades"

    def run(self, ctx: StudyContext) -> None:
        grader = grader_for(ctx)
        if grader is None:
            ctx.warn(f"disc grading: no model is installed (bundle '{BUNDLE}'); this stage was skipped")
            return
        locations = ctx.artifacts.get("disc_locations") or []
        if not locations:
            log.info("disc grading: no disc levels were placed, nothing to grade")
            return
        from ..discs.crop import CropSampler, StackSampler

        heads = _heads(ctx)
        sensitivity = ctx.options.sensitivity
        ctx.result.extra["grading"] = {"sensitivity": sensitivity}
        unweighted = grader.missing_priors(heads) if sensitivity else []
        if unweighted:
            ctx.warn(f"disc grading: the grading model has no held-out grade shares for {', '.join(unweighted)}; "
                     f"those heads show their most probable grade, not one at sensitivity {sensitivity:g}")
        axial = axial_for(ctx, grader)
        sagittal = CropSampler(ctx.study.volume)
        axial_sampler = StackSampler(axial.stacks) if axial is not None else None
        kept = []
        for loc in locations:
            try:
                crop = sagittal.crop(loc)
                ax_crop = axial_sampler.crop(loc) if axial_sampler is not None else None
            except Exception as e:  # a degenerate frame or geometry: this level only
                ctx.warn(f"disc grading: {loc.level} could not be cropped ({e}); not graded")
                continue
            f = crop.outside_fraction
            if f > MAX_OUTSIDE:
                ctx.warn(f"disc grading: {loc.level} not graded: {f:.0%} of its crop lies outside the image "
                         f"(more than {MAX_OUTSIDE:.0%})")
                continue
            if f > WARN_OUTSIDE:
                ctx.warn(f"disc grading: {loc.level} graded although {f:.0%} of its crop lies outside the image; "
                         "treat its grades with care")
            kept.append((loc, crop, ax_crop))
        crops: Dict[str, object] = {}
        axial_crops: Dict[str, object] = {}
        for i in range(0, len(kept), BATCH):
            part = kept[i:i + BATCH]
            graded = grader.grade([c for _, c, _ in part], heads, [a for _, _, a in part], sensitivity)
            for (loc, crop, ax_crop), grades in zip(part, graded):
                disc = ctx.result.disc(loc.level)
                if disc is None:
                    disc = loc.to_disc()
                    ctx.result.discs.append(disc)
                disc.grades.update(grades)
                if crop.outside_fraction > 0:
                    disc.extra["crop_outside_fraction"] = round(float(crop.outside_fraction), 4)
                if axial is not None:
                    disc.extra["axial_coverage"] = axial_coverage(ax_crop)
                crops[loc.level] = crop
                axial_crops[loc.level] = ax_crop
        ctx.artifacts["disc_crops"] = crops
        ctx.artifacts["axial_crops"] = axial_crops
        if crops and "pfirrmann" in heads and getattr(ctx.result.input, "sequence", None) == "T1":
            # Pfirrmann grades nucleus water, which only T2-weighted signal shows
            ctx.warn("disc grading: Pfirrmann grades are defined on T2-weighted images and this series is T1, "
                     "so its Pfirrmann grades carry little information; grade the study's sagittal T2 where it has one")


class SaliencyStage(Stage):
    name = "saliency"

    def run(self, ctx: StudyContext) -> None:
        mode = ctx.options.saliency
        if mode == "none":
            return
        grader = grader_for(ctx)
        if grader is None:
            ctx.warn(f"saliency maps: no model is installed (bundle '{BUNDLE}'); this stage was skipped")
            return
        from ..grading.heads import evidence_class
        from ..saliency.maps import heads_for_level, map_to_input, saliency_map
        from ..saliency.methods import DEFAULT_METHOD, METHODS, concrete_methods

        methods = [m for m in (ctx.options.saliency_methods or [DEFAULT_METHOD]) if m in METHODS] or [DEFAULT_METHOD]
        bad = [m for m in (ctx.options.saliency_methods or []) if m not in METHODS]
        if bad:
            ctx.warn(f"saliency maps: unknown method(s) {', '.join(bad)} ignored (use {', '.join(METHODS)})")
        if mode not in ("default", "all"):
            ctx.warn(f"saliency maps: unknown mode {mode!r}; using 'default'")
            mode = "default"
        crops = ctx.artifacts.get("disc_crops") or {}
        for level, crop in crops.items():
            disc = ctx.result.disc(level)
            if disc is None or not disc.grades:
                continue
            probs = {h: np.asarray(g.probabilities) for h, g in disc.grades.items()}
            x = grader.input_tensor([crop], [(ctx.artifacts.get("axial_crops") or {}).get(level)])
            for head in heads_for_level(probs, mode, list(probs)):
                cls = evidence_class(head, probs[head], HEADS[head].index(disc.grades[head].grade))
                # `auto` names the concrete method (ig / smoothgrad) in the file and the key
                for k, method in enumerate(concrete_methods(methods, head)):
                    m = saliency_map(method, grader.network, x, head, cls, grader.temperatures.get(head, 1.0),
                                     grader.gradcam_layer)
                    path = heatmap_path(level, head, method)
                    ctx.heatmaps[path] = map_to_input(m, crop, ctx.study.volume)
                    disc.saliency[head if k == 0 else f"{head}:{method}"] = path
                disc.extra.setdefault("saliency_class", {})[head] = int(HEADS[head][cls])


def axial_coverage(ax_crop) -> float:
    """Share of a level's crop the axial slices cover, as the model saw it (0 below ``MIN_AXIAL_INSIDE``)."""
    from ..grading.data import axial_input

    return round(float(axial_input(ax_crop)[1].mean()), 4)


def grading_stages() -> List[Stage]:
    """The grading and saliency stages, for :func:`~SpineGradeLogic.pipeline.stages.default_stages`."""
    return [GradingStage(), SaliencyStage()]
