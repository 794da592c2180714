"""``spinegrade batch INPUT_DIR --out DIR``: every study below a folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..batch import SUMMARY_CSV, run_batch
from .options import add_run_options, run_options
from .progress import Progress

log = logging.getLogger("spinegrade")


def register(sub) -> None:
    p = sub.add_parser("batch", help="run every study below a folder", description=(
        "Run the pipeline on every study below INPUT_DIR (volume files; DICOM files grouped by "
        "StudyInstanceUID; NAME_axial.nii.gz beside NAME.nii.gz is that study's axial T2). One result "
        "folder per study and summary.csv in --out. A failing study is "
        "recorded and the batch goes on; a rerun skips finished studies."))
    p.add_argument("input_dir", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--jobs", type=int, default=1, help="studies run in parallel processes (default 1)")
    p.add_argument("--force", action="store_true", help="rerun studies that already have a result")
    add_run_options(p, series=False)
    p.set_defaults(func=batch_command)


def batch_command(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise SystemExit("spinegrade batch: error: --jobs must be 1 or more")
    with Progress("spinegrade batch", quiet=args.quiet) as progress:
        rows = run_batch(args.input_dir, args.out, run_options(args), args.jobs, args.force, progress)
    failed = [r for r in rows if r.status == "error"]
    for r in failed:
        log.error("%s: %s", r.study, r.error)
    log.info("%d studies: %d ok, %d skipped (done earlier), %d failed; summary: %s", len(rows),
             sum(r.status == "ok" for r in rows), sum(r.status.startswith("skipped") for r in rows),
             len(failed), args.out / SUMMARY_CSV)
    return 4 if failed else 0
