"""The pipeline's stages: load -> vertebrae -> discs -> grades -> saliency -> write.

Each stage is a small object with a ``name`` and ``run(ctx)``; a model issue replaces its
stage in :func:`default_stages`. A stage whose model is not installed says so in the result's
warnings and the log and produces nothing: SpineGrade never invents output.
"""

from __future__ import annotations

from ..io.study import load_study
from ..results.folder import write_result_folder
from ..results.model import StudyResult
from .context import StudyContext, log


class Stage:
    name = "stage"

    def run(self, ctx: StudyContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LoadStage(Stage):
    name = "load"

    def run(self, ctx: StudyContext) -> None:
        o = ctx.options
        ctx.study = load_study(ctx.source, o.series_uid, o.series_description, o.sequence)
        ctx.result = StudyResult(input=ctx.study.info)
        log.info("input: %s (%s)", ctx.study.info.path, ctx.study.info.extra.get("selection", ""))


class ModelPendingStage(Stage):
    """A stage whose model is not part of this release: reports that, and does nothing else."""

    def __init__(self, name: str, what: str, bundle: str):
        self.name, self.what, self.bundle = name, what, bundle

    def run(self, ctx: StudyContext) -> None:
        ctx.warn(f"{self.what}: no model is installed (bundle '{self.bundle}'); this stage was skipped")


class WriteStage(Stage):
    name = "write"

    def run(self, ctx: StudyContext) -> None:
        write_result_folder(ctx.result, ctx.out_dir, ctx.segmentation, ctx.heatmaps)


def _grading_stages() -> list[Stage]:
    """Grades and saliency (they warn like a pending stage when no grading bundle is installed)."""
    from .grading_stage import grading_stages  # local: grading_stage imports Stage from here

    return grading_stages()


def default_stages() -> list[Stage]:
    from .vertebra_stage import DiscStage, VertebraeStage  # imports this module: imported here

    return [
        LoadStage(),
        VertebraeStage(),
        DiscStage(),
        *_grading_stages(),
        WriteStage(),
    ]
