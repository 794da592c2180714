"""``spinegrade demo --out DIR``: the whole pipeline on the built-in sample study.

The sample study is made by the synthetic generator (fixed seed, lumbar, T2), so the demo needs
no data and its ground truth is known; the result is written beside it for comparison.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..pipeline import run_study
from .options import add_run_options, run_options
from .progress import Progress

log = logging.getLogger("spinegrade")

SAMPLE_SEED = 7
SAMPLE_FOV = "lumbar"
SAMPLE_CONTRAST = "T2"


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the built-in sample study")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="where to write (default demo-output/)")
    add_run_options(p, series=False)
    p.set_defaults(func=demo_command)


def make_sample_study(folder: Path) -> Path:
    """Write the built-in sample study (image, labels, truth.json) into ``folder``; return the image."""
    from ..phantom import generate_case, write_case

    case = generate_case(seed=SAMPLE_SEED, fov=SAMPLE_FOV, contrast=SAMPLE_CONTRAST)
    write_case(case, folder)
    return folder / "image.nii.gz"


def compare_with_truth(result, truth_path: Path) -> list[str]:
    """How the run compares with the sample's ground truth: names, centroid error, grades."""
    import json

    import numpy as np

    from ..results.model import StudyResult

    truth = StudyResult.from_dict(json.loads(truth_path.read_text()))
    found = {v.label: np.asarray(v.centroid_mm) for v in result.vertebrae}
    true = {v.label: np.asarray(v.centroid_mm) for v in truth.vertebrae}
    both = sorted(set(found) & set(true), key=list(true).index)
    lines = [f"against the ground truth: {len(both)} of {len(true)} vertebrae named as in the truth"
             + (f", mean centroid error {np.mean([np.linalg.norm(found[n] - true[n]) for n in both]):.1f} mm" if both else "")]
    agree = total = 0
    for disc in result.discs:
        t = truth.disc(disc.level)
        if t is None:
            continue
        for head, g in disc.grades.items():
            if head in t.grades:
                total += 1
                agree += int(g.grade == t.grades[head].grade)
    if total:
        lines.append(f"  grades equal to the truth: {agree} of {total} ({100 * agree / total:.0f}%)")
    return lines


def demo_command(args: argparse.Namespace) -> int:
    out: Path = args.out
    sample_dir, result_dir = out / "sample-study", out / "result"
    image = make_sample_study(sample_dir)
    options = run_options(args)
    options.sequence = options.sequence or SAMPLE_CONTRAST  # the generator says what it made
    with Progress("spinegrade demo", quiet=args.quiet) as progress:
        result = run_study(image, result_dir, options, progress=progress)
    ran = [k for k in result.timing_s if k != "total"]
    print(f"sample study (synthetic {SAMPLE_FOV} {SAMPLE_CONTRAST}, seed {SAMPLE_SEED}): {sample_dir}")
    print(f"  image: {image}\n  ground truth: {sample_dir / 'truth.json'}, {sample_dir / 'labels.nii.gz'}")
    print(f"result: {result_dir}")
    for name in ("result.json", "grades.csv", "segmentation.nii.gz"):
        if (result_dir / name).exists():
            print(f"  {name}: {result_dir / name}")
    for d in result.discs:
        for head, path in d.saliency.items():
            print(f"  saliency {d.level} {head}: {result_dir / path}")
    print(f"stages run: {', '.join(ran)}; {len(result.vertebrae)} vertebrae, {len(result.discs)} disc levels")
    for line in compare_with_truth(result, sample_dir / "truth.json"):
        print(line)
    for w in result.warnings:
        print(f"  note: {w}")
    print(f"to look at it: spinegrade scene {result_dir} --out {out / 'scene.mrb'} --screenshot {out / 'screenshots'}")
    return 0
