"""The grading and saliency stages: disc crops -> calibrated grades -> heatmaps in the input's geometry.

Both find the ``spinegrade_grading`` bundle when they run (``RunOptions.bundles`` >
``$SPINEGRADE_GRADING_BUNDLE`` > ``Resources/Models/spinegrade_grading``); without one they add the
same "no model is installed" warning as a pending stage and produce nothing.

Crops partly outside the field of view (a level at the edge of the image): more than
``MAX_OUTSIDE`` (30 %) of the crop outside -> the level is not graded, with a warning; more than
``WARN_OUTSIDE`` (10 %) -> graded, with a warning. Never an exception.

Saliency (``RunOptions.saliency``): ``"default"`` makes one map per level, for the level's most
abnormal head (highest probability of a non-normal class; Pfirrmann 1-2 count as normal), explaining
the predicted grade or, where that is normal, the most probable abnormal grade; ``"all"`` makes one
per requested head; ``"none"`` makes none. ``RunOptions.saliency_methods`` lists the methods (first
one's map is ``disc.saliency[head]``, others ``disc.saliency["head:method"]``). Heatmaps go to
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
        from ..discs.crop import extract_crop

        heads = _heads(ctx)
        kept = []
        for loc in locations:
            try:
                crop = extract_crop(ctx.study.volume, loc)
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
            kept.append((loc, crop))
        crops: Dict[str, object] = {}
        for i in range(0, len(kept), BATCH):
            part = kept[i:i + BATCH]
            for (loc, crop), grades in zip(part, grader.grade([c for _, c in part], heads)):
                disc = ctx.result.disc(loc.level)
                if disc is None:
                    disc = loc.to_disc()
                    ctx.result.discs.append(disc)
                disc.grades.update(grades)
                if crop.outside_fraction > 0:
                    disc.extra["crop_outside_fraction"] = round(float(crop.outside_fraction), 4)
                crops[loc.level] = crop
        ctx.artifacts["disc_crops"] = crops
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
        from ..saliency.maps import METHODS, heads_for_level, map_to_input, saliency_map

        methods = [m for m in (ctx.options.saliency_methods or ["gradcam"]) if m in METHODS]
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
            x = grader.input_tensor([crop])
            for head in heads_for_level(probs, mode, list(probs)):
                cls = evidence_class(head, probs[head])
                for k, method in enumerate(methods):
                    m = saliency_map(method, grader.network, x, head, cls, grader.temperatures.get(head, 1.0),
                                     grader.gradcam_layer)
                    path = heatmap_path(level, head, method)
                    ctx.heatmaps[path] = map_to_input(m, crop, ctx.study.volume)
                    disc.saliency[head if k == 0 else f"{head}:{method}"] = path
                disc.extra.setdefault("saliency_class", {})[head] = int(HEADS[head][cls])


def grading_stages() -> List[Stage]:
    """The grading and saliency stages, for :func:`~SpineGradeLogic.pipeline.stages.default_stages`."""
    return [GradingStage(), SaliencyStage()]
