"""Draw the docs gallery: mid-sagittal slices of each contrast, field of view and pathology, beside
slices of real scans (read from ``../shared/data/real-dev`` when present; never copied).

    python -m SpineGradeLogic.phantom.gallery docs/gallery [--real ../shared/data/real-dev]

Needs matplotlib (not a dependency of the engine).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np

from .case import generate_case
from .config import LevelPathology, PhantomConfig

SEED = 7  # the demo's sample study
PRETTY = dict(slice_thickness_mm=(3.0, 3.0), pixel_mm=(0.6, 0.6), coverage_mm=(90.0, 90.0), oblique_deg=0.0,
              ghosting_share=0.0, noise_sd=(0.015, 0.015), transitional_share=0.0)

PATHOLOGY = [
    ("normal", {}, "T2", 0.0),
    ("narrowing (40 % height)", dict(height_ratio=0.4, hydration=0.3), "T2", 0.0),
    ("dehydration (Pfirrmann 4)", dict(hydration=0.2), "T2", 0.0),
    ("bulge 3.5 mm", dict(bulge_mm=3.5), "T2", 0.0),
    ("central herniation 7 mm", dict(herniation_mm=7.0, herniation_side="central", herniation_width_mm=14), "T2", 0.0),
    ("foraminal herniation (left foramen)", dict(herniation_mm=7.0, herniation_side="foraminal_left",
                                                 herniation_width_mm=10), "T1", -1.0),
    ("spondylolisthesis 8 mm", dict(slip_mm=8.0), "T2", 0.0),
    ("Schmorl nodes (endplate defects)", dict(upper_endplate_defect_mm=4.5, lower_endplate_defect_mm=4.0), "T2", 0.0),
    ("Modic 1 on T1", dict(modic=1), "T1", 0.0),
    ("Modic 1 on STIR", dict(modic=1), "STIR", 0.0),
    ("Modic 2 on T1", dict(modic=2), "T1", 0.0),
    ("Modic 2 on T2", dict(modic=2), "T2", 0.0),
    ("thick ligamentum flavum 7 mm", dict(flavum_mm=7.0), "T2", 0.0),
    ("facet hypertrophy (right foramen)", dict(facet_right_mm=6.0), "T1", 1.0),
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mid_slice(case, lateral: float = 0.0, level: Optional[str] = None, half_mm: Optional[float] = None):
    """A sagittal slice (rows superior->inferior, columns anterior->posterior) through the spine's
    midline (or ``lateral`` x foramen offsets to either side), optionally cropped around ``level``."""
    ref = case.truth.disc(level) if level else case.truth.disc("L4/L5") or case.truth.discs[len(case.truth.discs) // 2]
    centre = np.array(ref.center_mm)
    if lateral:
        cw = {"L4/L5": 24.0}.get(level, 24.0)
        centre = centre + np.array([lateral * (cw / 2 + 5.0), 0, 0])
    ijk = np.round(case.image.ras_to_index(centre)).astype(int)
    k = int(np.clip(ijk[2], 0, case.image.shape[2] - 1))
    img = case.image.array[:, :, k]
    lab = case.labels.array[:, :, k]
    if half_mm:
        r = int(half_mm / case.image.spacing[0])
        i0, j0 = max(ijk[0] - r, 0), max(ijk[1] - r, 0)
        img, lab = img[i0:ijk[0] + r, j0:ijk[1] + r], lab[i0:ijk[0] + r, j0:ijk[1] + r]
    return img.T, lab.T


def _show(ax, img, title, aspect=1.0):
    ax.imshow(img, cmap="gray", vmin=0, vmax=float(np.percentile(img, 99.6)), aspect=aspect, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def real_slices(real: Path):
    """Mid-sagittal slices of two real scans, oriented as the phantom's (anterior left, superior up)."""
    import nibabel as nib

    out = []
    t1 = real / "vb3-01" / "image.nii.gz"
    if t1.is_file():
        a = np.asarray(nib.load(str(t1)).dataobj, dtype=np.float32)
        out.append(("real T1 (MyoSegmenTUM vb3-01)", a[:, :, a.shape[2] // 2]))
    t2 = real / "sct-t2_lumbar" / "image.nii.gz"
    if t2.is_file():
        b = np.asarray(nib.load(str(t2)).dataobj, dtype=np.float32)
        out.append(("real T2 (SCT t2_lumbar)", b[b.shape[0] // 2, ::-1, ::-1].T))
    return out


def contrasts(out: Path, real: Path) -> None:
    plt = _plt()
    cfg = PhantomConfig(**PRETTY)
    cases = [(c, generate_case(SEED, "lumbar", c, cfg)) for c in ("T1", "T2", "STIR")]
    cases += [("random", generate_case(s, "lumbar", "random", cfg)) for s in (SEED, SEED + 1)]
    reals = real_slices(real)
    fig, axes = plt.subplots(1, len(cases) + len(reals), figsize=(3.3 * (len(cases) + len(reals)), 4.2))
    for ax, (name, case) in zip(axes, cases):
        img, _ = mid_slice(case)
        extra = f" (base {case.sequence})" if name == "random" else ""
        _show(ax, img, f"synthetic {name}{extra}")
    for ax, (name, img) in zip(axes[len(cases):], reals):
        _show(ax, img, name)
    fig.tight_layout()
    fig.savefig(out / "contrasts.png", dpi=110)
    plt.close(fig)


def fovs(out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(13, 6), gridspec_kw=dict(width_ratios=[1, 1, 0.8, 0.8]))
    cfg = PhantomConfig(**{**PRETTY, "pixel_mm": (0.8, 0.8)})
    for ax, (fov, c) in zip(axes, [("lumbar", "T2"), ("thoracolumbar", "T2"), ("whole", "T2"), ("whole", "T1")]):
        case = generate_case(SEED + 3, fov, c, cfg)
        img, _ = mid_slice(case)
        _show(ax, img, f"{fov} {c}: {case.truth.vertebrae[0].label}-{case.truth.vertebrae[-1].label}",
              aspect=case.image.spacing[1] / case.image.spacing[0])
    fig.tight_layout()
    fig.savefig(out / "fields_of_view.png", dpi=100)
    plt.close(fig)


def labels(out: Path) -> None:
    plt = _plt()
    from matplotlib.colors import ListedColormap

    case = generate_case(SEED, "lumbar", "T2", PhantomConfig(**PRETTY))
    img, lab = mid_slice(case)
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.2, 1.0, (256, 4))
    colours[:, 3] = 0.55
    colours[0] = 0
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.6))
    _show(axes[0], img, "synthetic T2")
    _show(axes[1], img, "labels (names.py values)")
    axes[1].imshow(np.clip(lab, 0, 255), cmap=ListedColormap(colours), vmin=0, vmax=255, interpolation="nearest")
    fig.tight_layout()
    fig.savefig(out / "labels.png", dpi=110)
    plt.close(fig)


def pathology(out: Path) -> None:
    plt = _plt()
    n = len(PATHOLOGY)
    cols = 7
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.0 * rows))
    for ax, (name, forced, contrast, lateral) in zip(axes.ravel(), PATHOLOGY):
        cfg = PhantomConfig(**PRETTY, healthy=True, levels={"L4/L5": LevelPathology(**forced)} if forced else {})
        case = generate_case(SEED, "lumbar", contrast, cfg)
        img, _ = mid_slice(case, lateral, "L4/L5", half_mm=45)
        g = case.truth.disc("L4/L5").grades
        shown = {h: x.grade for h, x in g.items() if (x.grade > 0 and h != "pfirrmann")}
        note = f"P{g['pfirrmann'].grade} " + " ".join(f"{h.replace('_stenosis', '').replace('lateral_recess', 'recess')}={v}"
                                                      for h, v in shown.items())
        _show(ax, img, f"{name}\n{contrast}, L4/L5")
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=5.5, color="yellow", va="bottom", wrap=True)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "pathology.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="draw the phantom gallery")
    ap.add_argument("out", type=Path)
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data" / "real-dev")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    contrasts(args.out, args.real)
    fovs(args.out)
    labels(args.out)
    pathology(args.out)


if __name__ == "__main__":
    main()
