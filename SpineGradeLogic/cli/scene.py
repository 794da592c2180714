"""``spinegrade scene RESULT_DIR --out FILE.mrml|FILE.mrb [--screenshot DIR]``.

Builds the result's 3D Slicer scene headlessly with ``slicer-core`` (Slicer's MRML libraries
without Qt), through the same MRML adapter the Slicer module uses, saves it to open in Slicer and
renders PNG screenshots: the mid-sagittal slice with labels and disc boxes, and each saliency map.
``slicer`` is imported only when the command runs, never when the engine is imported.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import SpineGradeError

log = logging.getLogger("spinegrade")


class SlicerCoreMissing(SpineGradeError):
    """slicer-core (and so the MRML libraries) is not installed."""

    exit_code = 3


def register(sub) -> None:
    p = sub.add_parser(
        "scene",
        help="save a result as a 3D Slicer scene (.mrml/.mrb) and render PNG screenshots",
        description=(
            "Build the 3D Slicer scene of a result folder headlessly (segmentation, vertebra points, "
            "disc ROIs with grades, grades table, saliency volumes), save it as .mrml (data in "
            "FILE_data/ beside it) or .mrb, and optionally render PNG screenshots. Needs slicer-core: "
            "pip install 'spinegrade[slicer]'."),
    )
    p.add_argument("result_dir", type=Path, metavar="RESULT_DIR", help="a result folder written by spinegrade run")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="scene file to write: .mrml or .mrb")
    p.add_argument("--screenshot", type=Path, metavar="DIR",
                   help="also write PNGs here: mid_sagittal.png and saliency_<level>_<head>_<method>.png")
    p.set_defaults(func=run_scene)


def _export_scene():
    try:
        from SpineGradeSlicer.SpineGradeLib.scene_export import export_scene
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("slicer", "slicer_core", "vtk", "vtkmodules"):
            raise SlicerCoreMissing(
                "spinegrade scene needs slicer-core (Slicer's MRML libraries): pip install 'spinegrade[slicer]'"
            ) from e
        if e.name and e.name.startswith("SpineGradeSlicer"):  # inside Slicer the library is top-level
            from SpineGradeLib.scene_export import export_scene  # type: ignore[no-redef]
        else:
            raise
    return export_scene


def run_scene(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.out.suffix.lower() not in (".mrml", ".mrb"):
        raise InputError(f"{args.out}: --out must end in .mrml or .mrb")
    if not (args.result_dir / "result.json").is_file():
        raise InputError(f"{args.result_dir}: no result.json here, not a SpineGrade result folder")
    export_scene = _export_scene()
    summary = export_scene(args.result_dir, args.out, args.screenshot)
    n = summary["nodes"]
    log.info("scene: %s (study %s: %d segments, %d vertebrae, %d disc levels, %d saliency maps)",
             summary["scene"], summary["study"], n["segments"], n["vertebra_points"], n["disc_rois"],
             n["saliency_volumes"])
    for shot in summary["screenshots"]:
        log.info("screenshot: %s", shot)
    for w in summary["warnings"]:
        log.warning("%s", w)
    return 0
