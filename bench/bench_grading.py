"""Grading bench: evidence (saliency on generated lesions) and speed (grades + default saliency per study).

    python bench/bench_grading.py [--bundle PATH] [--n 10] [--start 300000] [--method auto] [gradcam ig smoothgrad occlusion]
                                   [--threads 2] [--no-axial]

Evidence: cases from seeds 300000+ with one lesion forced at L4/L5 (a central herniation, a Modic 2
change, a 6 mm slip); the map of the lesion's head (disc_herniation, modic, spondylolisthesis) for
the class a run explains (the predicted grade, or the most probable abnormal one), on the crop at the
true disc; where that is not the lesion's own class (a Modic 2 change graded Modic 1), the bench also
measures the map for the lesion's class ("for the true class"). Printed per lesion: the share of saliency mass
inside the lesion's region against the region's share of the crop (their ratio: 1 = no better than
chance), how often the map's peak lies inside the region (target >= 80 %), and how often the default
mode's "most abnormal head" is the lesion's head. Regions: herniation = voxels of tissue HERNIA with
the disc's label (endplate defects are switched off in these cases so no Schmorl node shares it);
Modic = voxels of tissue MODIC1-3; slip = the disc's own voxels dilated by 3 mm (the generator gives
no slip mask: the step-off lies at the disc's margins; an approximation).

For a model that reads the axial T2 (3 input channels) every case also holds an axial stack, given
to it as a run would; ``--no-axial`` measures such a model on the sagittal crop alone. A sagittal-only
model gets cases without one (the figures in docs/grading.md).

Speed: one lumbar study, every truth level graded and the default saliency, torch on ``--threads``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def lesion_cases(kind: str, n: int, start: int = 300000, axial: bool = True):
    from SpineGradeLogic.phantom import LevelPathology, PhantomConfig, generate_case

    forced = {
        "herniation": LevelPathology(herniation_mm=6.0, herniation_side="central", upper_endplate_defect_mm=0.0,
                                     lower_endplate_defect_mm=0.0),
        "modic": LevelPathology(modic=2, upper_endplate_defect_mm=0.0, lower_endplate_defect_mm=0.0),
        "slip": LevelPathology(slip_mm=6.0),
    }[kind]
    for seed in range(start, start + n):
        yield generate_case(seed, "lumbar", "T2", PhantomConfig(levels={"L4/L5": forced}, axial_lower_share=0.0),
                            axial=axial)


def lesion_mask(case, kind: str, level: str):
    from scipy.ndimage import binary_dilation

    from SpineGradeLogic.names import disc_label
    from SpineGradeLogic.phantom import tissues as T

    tis, lab = case.tissues.array, case.labels.array
    dl = disc_label(level.split("/")[0])
    if kind == "herniation":
        m = (tis == T.HERNIA) & (lab == dl)
    elif kind == "modic":
        m = np.isin(tis, (T.MODIC1, T.MODIC2, T.MODIC3))
    else:
        sp = np.asarray(case.image.spacing)
        it = np.maximum(1, np.round(3.0 / sp).astype(int))
        m = lab == dl
        for ax, k in enumerate(it):  # 3 mm along every axis (anisotropic voxels)
            st = np.zeros((3, 3, 3), bool)
            idx = [1, 1, 1]
            for d in (0, 2):
                idx[ax] = d
                st[tuple(idx)] = True
            st[1, 1, 1] = True
            m = binary_dilation(m, st, iterations=int(k))
    return case.image.with_array(m.astype(np.float32))


def evidence(grader, kind: str, n: int, method: str, axial: bool = True, start: int = 300000):
    import torch

    from SpineGradeLogic.discs.crop import extract_crop
    from SpineGradeLogic.grading.heads import evidence_class, most_abnormal_head
    from SpineGradeLogic.grading.prepare import truth_location
    from SpineGradeLogic.saliency import saliency_map

    head = {"herniation": "disc_herniation", "modic": "modic", "slip": "spondylolisthesis"}[kind]
    true_cls = {"herniation": 1, "modic": 2, "slip": 1}[kind]
    ratios, peaks, picked, true_peaks = [], [], [], []
    for case in lesion_cases(kind, n, start, axial=axial):
        disc = case.truth.disc("L4/L5")
        if disc is None:
            continue
        loc = truth_location(disc)
        crop = extract_crop(case.image, loc)
        mask = extract_crop(lesion_mask(case, kind, "L4/L5"), loc).image.array > 0.5
        if not mask.any():
            continue
        ax = [extract_crop(case.axial, loc)] if case.axial is not None else None
        x = grader.input_tensor([crop], ax)
        probs = grader.predict(x)[0]
        cls = evidence_class(head, probs[head])
        m = saliency_map(method, grader.network, x, head, cls, grader.temperatures[head], grader.gradcam_layer)
        m = m * crop.inside
        inside_share = float(m[mask].sum() / max(m.sum(), 1e-12))
        ratios.append(inside_share / float(mask.mean()))
        peaks.append(bool(mask.flat[int(np.argmax(m))]))
        picked.append(most_abnormal_head(probs) == head)
        if cls != true_cls:
            m = saliency_map(method, grader.network, x, head, true_cls, grader.temperatures[head], grader.gradcam_layer)
            m = m * crop.inside
        true_peaks.append(bool(mask.flat[int(np.argmax(m))]))
    return ratios, peaks, picked, true_peaks


def speed(grader_path: Path, threads: int, axial: bool = True) -> float:
    import torch

    from SpineGradeLogic.grading.prepare import truth_location
    from SpineGradeLogic.io.study import LoadedStudy
    from SpineGradeLogic.phantom import generate_case
    from SpineGradeLogic.pipeline.context import RunOptions, StudyContext
    from SpineGradeLogic.pipeline.grading_stage import GradingStage, SaliencyStage
    from SpineGradeLogic.results.model import StudyResult

    import SimpleITK as sitk

    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    from SpineGradeLogic.io.axial import AxialSeries

    case = generate_case(300999, "lumbar", "T2", axial=axial)
    times = []
    for _ in range(3):
        ctx = StudyContext("bench", Path(tempfile.gettempdir()) / "bench-grading",
                           RunOptions(bundles={"spinegrade_grading": grader_path}))
        if case.axial is not None:  # as the stage would have read it from the study
            ctx.artifacts["axial"] = AxialSeries(case.axial, "AX T2 TSE", None, "T2", "bench")
        ctx.study = LoadedStudy(case.image, case.truth.input)
        ctx.result = StudyResult(case.truth.input)
        ctx.artifacts["disc_locations"] = [truth_location(d) for d in case.truth.discs]
        t0 = time.perf_counter()
        GradingStage().run(ctx)
        SaliencyStage().run(ctx)
        times.append(time.perf_counter() - t0)
    print(f"speed: {len(case.truth.discs)} levels graded + default saliency"
          f"{' with the axial T2' if case.axial is not None else ''}: "
          f"{min(times[1:]):.2f} s per study (first run, with model loading: {times[0]:.2f} s), {threads} threads")
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="grading bundle (default: the installed one)")
    ap.add_argument("--n", type=int, default=10, help="cases per lesion kind")
    ap.add_argument("--method", nargs="+", default=["auto"], choices=["auto", "gradcam", "ig", "smoothgrad", "occlusion"],
                    help="saliency methods to measure (default: auto, what a run uses)")
    ap.add_argument("--start", type=int, default=300000, help="first seed of the lesion cases")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-axial", action="store_true", help="cases without the axial T2 stack")
    args = ap.parse_args()
    import torch

    from SpineGradeLogic.grading.bundle_card import BUNDLE_NAME
    from SpineGradeLogic.grading.infer import Grader
    from SpineGradeLogic.models.bundle import find_bundle

    bundle = find_bundle(BUNDLE_NAME, args.bundle)
    if bundle is None:
        raise SystemExit("no grading bundle is installed; pass --bundle")
    torch.set_num_threads(args.threads)
    grader = Grader.load(bundle)
    print(f"bundle {bundle} (version {grader.model.version}, {grader.channels} input channel(s))")
    axial = grader.uses_axial and not args.no_axial
    for method in args.method:
        for kind in ("herniation", "modic", "slip"):
            ratios, peaks, picked, true_peaks = evidence(grader, kind, args.n, method, axial, args.start)
            if not ratios:
                print(f"{method:<9} {kind:<11} no usable cases")
                continue
            print(f"{method:<9} {kind:<11} n={len(ratios):>3}  mass inside / region share: median {np.median(ratios):.2f} "
                  f"(min {np.min(ratios):.2f})  peak inside: {np.mean(peaks):.0%} (target >= 80%; "
                  f"for the true class {np.mean(true_peaks):.0%})  "
                  f"default mode picks this head: {np.mean(picked):.0%}")
    speed(bundle, args.threads, axial)


if __name__ == "__main__":
    main()
