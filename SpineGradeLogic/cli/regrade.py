"""``spinegrade regrade RESULT_DIR --rename OLD=NEW [--rename ...] [--out DIR]``.

Corrects vertebra names in a result folder and re-runs what depends on them: disc levels, grades
and saliency maps on the result's input image (see `SpineGradeLogic.pipeline.regrade`). The folder
is replaced atomically unless ``--out`` names another one; bad corrections change nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List

from ..errors import InputError
from .options import add_run_options, run_options
from .progress import Progress

log = logging.getLogger("spinegrade")


def register(sub) -> None:
    p = sub.add_parser(
        "regrade",
        help="correct vertebra names in a result and re-grade its disc levels",
        description=(
            "Rename vertebrae in a result folder (all renames apply at once, e.g. --rename L5=L6 "
            "--rename L4=L5), then place the disc levels, grade them and make the saliency maps again "
            "on the result's input image. The vertebra segmentation is kept; only its names change."),
    )
    p.add_argument("result_dir", type=Path, metavar="RESULT_DIR", help="a result folder written by spinegrade run")
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                   help="call vertebra OLD NEW (repeatable; names not given stay as they are)")
    p.add_argument("--names", metavar="NAME,NAME,...",
                   help="instead of --rename: the full list of corrected names, superior first, comma-separated")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the corrected result here (default: replace RESULT_DIR)")
    add_run_options(p, series=False)
    p.set_defaults(func=run_regrade)


def parse_renames(items: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise InputError(f"--rename takes OLD=NEW (e.g. L5=L6), not '{item}'")
        if old in out and out[old] != new:
            raise InputError(f"{old} is renamed twice ({old}={out[old]} and {old}={new})")
        out[old] = new
    return out


def run_regrade(args: argparse.Namespace) -> int:
    from ..pipeline.regrade import regrade

    if args.names and args.rename:
        raise InputError("give either --rename OLD=NEW or --names, not both")
    if args.names:
        corrections = [n.strip() for n in args.names.split(",") if n.strip()]
    elif args.rename:
        corrections = parse_renames(args.rename)
    else:
        raise InputError("nothing to correct: give --rename OLD=NEW (repeatable) or --names")
    out = args.out or args.result_dir
    with Progress("spinegrade regrade", quiet=args.quiet) as progress:
        result = regrade(args.result_dir, corrections, out, run_options(args), progress=progress)
    log.info("result: %s (%s; %d disc levels)", out / "result.json",
             " ".join(v.label for v in result.vertebrae), len(result.discs))
    return 0
