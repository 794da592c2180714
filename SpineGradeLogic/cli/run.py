"""``spinegrade run INPUT --out DIR``: one study."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..pipeline import run_study
from .options import add_run_options, run_options
from .progress import Progress

log = logging.getLogger("spinegrade")


def register(sub) -> None:
    p = sub.add_parser("run", help="run the pipeline on one study", description=(
        "Run the pipeline on one study: a NIfTI/NRRD/MHA file, a DICOM series folder, DICOM files, "
        "or a DICOM study folder (the sagittal T2 is used unless you choose)."))
    p.add_argument("input", nargs="+", type=Path, help="volume file, DICOM folder, or DICOM files")
    p.add_argument("--out", required=True, type=Path, help="result folder (replaced if it exists)")
    add_run_options(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    source = args.input[0] if len(args.input) == 1 else args.input
    with Progress("spinegrade run", quiet=args.quiet) as progress:
        result = run_study(source, args.out, run_options(args), progress=progress)
    report(result, args.out)
    return 0


def report(result, out: Path) -> None:
    log.info("result: %s (%d vertebrae, %d disc levels, %d warnings)", out / "result.json",
             len(result.vertebrae), len(result.discs), len(result.warnings))
