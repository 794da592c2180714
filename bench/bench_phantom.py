"""Time the synthetic spine generator: seconds per case on one core, per field of view and contrast.

    python bench/bench_phantom.py [--n 5] [--write]

Runs with SimpleITK limited to one thread (the generator's own numpy work is single-threaded), so
the numbers are per core. ``--write`` also times writing a case (NIfTI + truth.json + DICOM).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import SimpleITK as sitk

from SpineGradeLogic.phantom import generate_case, write_case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5, help="cases per setting (default 5)")
    ap.add_argument("--write", action="store_true", help="also time write_case with DICOM")
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    print(f"{'fov':<14}{'contrast':<9}{'mean s':>8}{'max s':>8}  shape (one case)")
    for fov, contrast in [("lumbar", "T2"), ("lumbar", "T1"), ("lumbar", "STIR"), ("lumbar", "random"),
                          ("thoracolumbar", "T2"), ("whole", "T2")]:
        times = []
        for seed in range(args.n):
            t0 = time.perf_counter()
            case = generate_case(seed, fov, contrast)
            times.append(time.perf_counter() - t0)
        print(f"{fov:<14}{contrast:<9}{statistics.mean(times):>8.2f}{max(times):>8.2f}  {case.image.shape}")
    if args.write:
        case = generate_case(0, "lumbar", "T2")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_case(case, tmp, dicom=True)
            print(f"write_case (NIfTI + truth.json + DICOM), lumbar: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
