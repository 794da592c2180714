"""Issue 4's figures for vertebra labelling and disc localisation, and their speed and memory.

    python bench/bench_vertebrae.py [--bundle PATH] [--real DIR] [--generated N] [--oracle] [--no-speed]

Prints (none of these is a timed test):
- real-dev vb3 scans the bundle held out (metadata ``spinegrade.training.split.real_validation``, exactly
  those): identification rate (VerSe), share of scans with every vertebra right, mean centroid error,
  vertebral-body Dice (bodies L1-L5, all that vb3 labels);
- sct-t2_lumbar: distance from the found T9/T10 disc centre, and from its posterior edge, to the landmark;
- generated cases of every field of view and contrast (seeds 10000+, never trained on): the same plus
  disc-centre error;
- speed of labelling + disc localisation on a 512x512x15 study, model loading included, in a fresh
  process limited to 2 threads, and that process's peak memory (max RSS).

Without an installed bundle the accuracy figures are skipped (``--oracle`` measures the decoder and
disc localisation on ground-truth masks instead) and speed is timed with untrained weights of the
shipped architecture (speed does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev"


def _speed_child(bundle: str, image_path: str, labels_path: str, queue, outline: str = "") -> None:
    """In a fresh process: load the model, label, place discs; report seconds and peak memory."""
    try:
        _measure(bundle, image_path, labels_path, queue, outline)
    except BaseException:  # report, never leave the parent waiting
        import traceback

        queue.put({"error": traceback.format_exc()})


def _measure(bundle: str, image_path: str, labels_path: str, queue, outline: str = "") -> None:
    import resource
    import time

    t_import = time.perf_counter()
    import torch

    torch.set_num_threads(2)
    from SpineGradeLogic.evaluation.evaluate_vertebrae import oracle_predictor
    from SpineGradeLogic.models import bundle as _bundle_module  # noqa: F401  (monai, torch: the imports a run pays once)
    from SpineGradeLogic.pipeline.vertebra_stage import (OUTLINE_BUNDLE, default_predictor, find_vertebrae, input_segmentation,
                                                         load_model, locate)
    from SpineGradeLogic.results.folder import read_volume

    t0 = time.perf_counter()
    image = read_volume(Path(image_path))
    timing = {}

    def timed(predict):
        def run(model, img, device):
            t = time.perf_counter()
            out = predict(model, img, device)
            timing["network_s"] = time.perf_counter() - t
            return out
        return run

    t1 = time.perf_counter()
    model = load_model(Path(bundle))
    t2 = time.perf_counter()
    found = find_vertebrae(image, model, "cpu", timed(default_predictor))
    t3 = time.perf_counter()
    locations = locate(found)[0] if found.labelling.vertebrae else []
    t4 = time.perf_counter()
    # the label volume on the input grid: resampled, lateral rim, body outlines redrawn (outline bundle loaded here)
    out_model = load_model(Path(outline), name=OUTLINE_BUNDLE) if outline else None
    input_segmentation(found, image, out_model.network if out_model else None)
    t4b = time.perf_counter()
    r = {
        "import_s": t0 - t_import, "read_s": t1 - t0, "load_s": t2 - t1, "network_s": timing["network_s"],
        "post_s": t3 - t2 - timing["network_s"], "discs_s": t4 - t3, "segmentation_s": t4b - t4, "outline": bool(outline),
        "named": found.labelling.names, "discs": [l.level for l in locations], "shape": list(image.shape),
    }
    # the same study with the network's output replaced by the ground truth: what labelling and disc
    # localisation cost on a clean, realistic output (an untrained network's output is not)
    oracle = oracle_predictor(read_volume(Path(labels_path)))
    t5 = time.perf_counter()
    found_o = find_vertebrae(image, model, "cpu", timed(oracle))
    t6 = time.perf_counter()
    loc_o = locate(found_o)[0] if found_o.labelling.vertebrae else []
    t7 = time.perf_counter()
    r.update(oracle_post_s=t6 - t5 - timing["network_s"], oracle_discs_s=t7 - t6, oracle_named=found_o.labelling.names,
             oracle_discs=len(loc_o), maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    queue.put(r)


def study_512(tmp: Path) -> tuple[Path, Path]:
    """A generated lumbar T2 study (seed 10000) resampled to 512 x 512 in-plane, 15 sagittal slices,
    and its labels on the same grid."""
    import numpy as np
    import SimpleITK as sitk

    from SpineGradeLogic.io.volume import Volume
    from SpineGradeLogic.phantom import generate_case
    from SpineGradeLogic.results.folder import write_volume

    case = generate_case(10000, "lumbar", "T2")
    img = case.image.to_sitk()
    size = np.array(img.GetSize(), float)
    spacing = np.array(img.GetSpacing(), float)
    slice_axis = int(np.argmax(spacing))
    new_size = [512, 512, 512]
    new_size[slice_axis] = 15
    new_spacing = size * spacing / np.array(new_size)
    ref = sitk.Image([int(s) for s in new_size], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in new_spacing))
    ref.SetOrigin(img.GetOrigin())
    ref.SetDirection(img.GetDirection())
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    lab = sitk.Resample(case.labels.to_sitk(), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkInt16)
    path, labels = tmp / "study_512x512x15.nii.gz", tmp / "labels_512x512x15.nii.gz"
    write_volume(Volume.from_sitk(out), path)
    write_volume(Volume.from_sitk(lab), labels)
    return path, labels


def speed(bundle: Path | None, outline: Path | None = None) -> list[str]:
    from SpineGradeLogic.models.bundle import save_bundle
    from SpineGradeLogic.vertebrae.network import NETWORK_KWARGS, build_network

    lines = ["== speed and memory: labelling + disc localisation, model load included (2 threads, fresh process) =="]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        note = ""
        if bundle is None:
            bundle = save_bundle(tmp / "spinegrade_vertebrae", build_network(), NETWORK_KWARGS)
            note = " (untrained weights of the shipped architecture: no trained bundle installed)"
        image, labels = study_512(tmp)
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_speed_child, args=(str(bundle), str(image), str(labels), q, str(outline or "")))
        p.start()
        p.join(timeout=600)
        try:
            r = q.get(timeout=5)
        except Exception:  # queue.Empty: it died without a word (killed for memory?)
            r = {"error": f"the measuring process ended with exit code {p.exitcode}"}
    if "error" in r:
        return lines + [f"  failed: {r['error']}"]
    net = r["load_s"] + r["network_s"]
    seg_what = "rim + body outlines redrawn, outline model load included" if r["outline"] else "rim; no outline model"
    labelling = net + r["post_s"] + r["discs_s"]
    lines += [
        f"  study {'x'.join(map(str, r['shape']))}{note}",
        f"  imports (torch, monai; once per process) {r['import_s']:.2f} s, reading the study {r['read_s']:.2f} s",
        f"  model load {r['load_s']:.2f} s + network {r['network_s']:.2f} s + labelling {r['post_s']:.2f} s + discs "
        f"{r['discs_s']:.2f} s = {labelling:.2f} s; named: {' '.join(r['named']) or '-'}",
        f"  + the label volume on the input grid ({seg_what}) {r['segmentation_s']:.2f} s = "
        f"{labelling + r['segmentation_s']:.2f} s with segmentation.nii.gz's contents",
        f"  with the network's output replaced by the truth (clean output): model load + network {net:.2f} s + labelling "
        f"{r['oracle_post_s']:.2f} s + discs {r['oracle_discs_s']:.2f} s = {net + r['oracle_post_s'] + r['oracle_discs_s']:.2f} s; "
        f"named: {' '.join(r['oracle_named'])}, {r['oracle_discs']} discs",
        f"  peak memory: {r['maxrss_mb']:.0f} MB (max RSS of the whole process, Python, torch and MONAI included)",
    ]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="vertebra bundle (default: the installed one)")
    ap.add_argument("--real", type=Path, default=REAL_DEV, help=f"real-dev folder (default {REAL_DEV})")
    ap.add_argument("--generated", type=int, default=1, help="generated cases per field of view and contrast (default 1)")
    ap.add_argument("--oracle", action="store_true", help="ground truth instead of the network (decoder + discs alone)")
    ap.add_argument("--outline", type=Path, help="body-outline bundle (default: the installed one, if any)")
    ap.add_argument("--no-outline", action="store_true", help="keep the vertebra network's own body outlines")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from SpineGradeLogic.cli.evaluate import evaluate_vertebrae_command
    from SpineGradeLogic.models.bundle import find_bundle
    from SpineGradeLogic.pipeline.vertebra_stage import BUNDLE, OUTLINE_BUNDLE

    bundle = find_bundle(BUNDLE, args.bundle)
    outline = None if args.no_outline else find_bundle(OUTLINE_BUNDLE, args.outline)
    if not args.real.is_dir():
        print(f"real-dev scans not found at {args.real}: real and sct-t2_lumbar figures skipped")
    if bundle is None and not args.oracle:
        print(f"no trained '{BUNDLE}' bundle installed (Resources/Models/{BUNDLE} or --bundle): accuracy figures skipped;"
              " --oracle measures the decoder and disc localisation on ground-truth masks")
    else:
        ns = argparse.Namespace(
            real=args.real if args.real.is_dir() else None, sct=args.real if args.real.is_dir() else None,
            generated=args.generated, fov=None, contrast=None, bundle=bundle, cases=None, oracle=args.oracle,
            device="cpu", json=args.json, outline=outline, no_outline=outline is None,
        )
        evaluate_vertebrae_command(ns)
    if not args.no_speed:
        print("\n".join(speed(bundle, outline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
