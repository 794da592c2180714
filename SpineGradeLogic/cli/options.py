"""Flags shared by the commands that run the pipeline (run, batch, demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..grading.decision import check_sensitivity
from ..names import HEAD_NAMES
from ..pipeline import RunOptions
from ..saliency.methods import DEFAULT_METHOD, METHODS


def add_run_options(p: argparse.ArgumentParser, series: bool = True) -> None:
    g = p.add_argument_group("what to run")
    if series:
        g.add_argument("--series-uid", help="use the DICOM series with this SeriesInstanceUID")
        g.add_argument("--series-description", help="use the DICOM series whose description contains this text")
        g.add_argument("--axial", type=Path, metavar="PATH",
                       help="the study's axial T2 series (volume file or DICOM folder) for the grading model; "
                            "default: the DICOM study's own axial series, if any")
    g.add_argument("--sequence", choices=["T1", "T2", "STIR"], help="the sequence, where headers or file name do not tell it")
    g.add_argument("--no-axial", action="store_true", help="grade from the sagittal series alone")
    g.add_argument("--heads", nargs="+", metavar="HEAD", choices=HEAD_NAMES, help="grading heads to run (default: all)")
    g.add_argument("--sensitivity", type=_sensitivity, default=0.0, metavar="S",
                   help="operating point of the grade shown, 0-1: 0 (default) the most probable grade; higher values "
                        "call the uncommon (mild, moderate, severe) grades more often, 1 weighs every grade as if all "
                        "were equally common. The probabilities do not change")
    g.add_argument("--saliency", choices=["default", "all", "none"], default="default",
                   help="default: one map per level for its most abnormal head; all: every head; none")
    g.add_argument("--saliency-method", nargs="+", choices=list(METHODS), default=[DEFAULT_METHOD],
                   help="saliency methods (default: auto, per head the method that found generated lesions best: "
                        "ig for Modic, endplate defects and Pfirrmann, smoothgrad for the rest)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    g.add_argument("--bundle", action="append", default=[], metavar="NAME=PATH",
                   help="use the model bundle at PATH for model NAME (repeatable)")


def _sensitivity(text: str) -> float:
    try:
        return check_sensitivity(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run_options(args: argparse.Namespace) -> RunOptions:
    bundles = {}
    for item in args.bundle:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--bundle takes NAME=PATH, not '{item}'")
        bundles[name] = Path(path)
    return RunOptions(
        series_uid=getattr(args, "series_uid", None),
        series_description=getattr(args, "series_description", None),
        sequence=args.sequence,
        heads=list(args.heads or HEAD_NAMES),
        saliency=args.saliency,
        saliency_methods=list(args.saliency_method),
        device=args.device,
        bundles=bundles,
        axial=getattr(args, "axial", None),
        use_axial=not getattr(args, "no_axial", False),
        sensitivity=getattr(args, "sensitivity", 0.0),
    )
