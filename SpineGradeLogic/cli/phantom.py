"""``spinegrade phantom --out DIR --n N --seed S``: synthetic spine MRI studies with ground truth.

Each case goes to ``DIR/case-<seed>/`` with ``image.nii.gz``, ``labels.nii.gz``, ``tissues.nii.gz``,
``truth.json`` (the result schema) and, with ``--dicom``, a ``dicom/`` series. Case ``i`` uses seed
``S + i``, so a set can be extended or regenerated one case at a time.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..errors import InputError

log = logging.getLogger("spinegrade")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def register(subparsers) -> None:
    from ..phantom import CONTRASTS, FOVS

    p = subparsers.add_parser("phantom", help="generate synthetic spine MRI studies with ground truth",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write the cases into")
    p.add_argument("--n", type=_positive_int, default=1, help="number of cases (default 1)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first case (default 0)")
    p.add_argument("--fov", choices=FOVS, default="lumbar", help="field of view (default lumbar)")
    p.add_argument("--contrast", choices=CONTRASTS, default="T2",
                   help="T1, T2, STIR, or random (SynthSeg-style domain randomisation); default T2")
    p.add_argument("--dicom", action="store_true", help="also write each case as a DICOM series")
    p.set_defaults(func=run_phantom)


def run_phantom(args) -> int:
    """Generate ``args.n`` cases into ``args.out``; returns the exit code."""
    from ..phantom import CONTRASTS, FOVS, generate_case, write_case

    n, seed = int(args.n), int(args.seed)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise InputError(f"--seed must be 0 or more, got {seed}")
    if args.fov not in FOVS:
        raise InputError(f"unknown --fov {args.fov!r}: use one of {', '.join(FOVS)}")
    if args.contrast not in CONTRASTS:
        raise InputError(f"unknown --contrast {args.contrast!r}: use one of {', '.join(CONTRASTS)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    quiet = bool(getattr(args, "quiet", False))
    t0 = time.perf_counter()
    for i in range(n):
        case = generate_case(seed + i, args.fov, args.contrast)
        folder = write_case(case, out / f"case-{seed + i:05d}", dicom=bool(args.dicom))
        if not quiet:
            levels = ", ".join(f"{d.level}" for d in case.truth.discs if any(
                g.grade > (2 if h == "pfirrmann" else 0) for h, g in d.grades.items()))
            print(f"{folder}: {case.sequence} {case.fov}, {len(case.truth.vertebrae)} vertebrae, "
                  f"{len(case.truth.discs)} discs; pathology at: {levels or 'none'} "
                  f"({case.timing_s['total']:.1f} s)")
    if not quiet:
        print(f"{n} case(s) in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0
