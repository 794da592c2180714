"""``spinegrade evaluate grading``: a grading bundle measured on generated crops it never saw, or on
a labelled dataset (``--dataset``: SPIDER, RSNA 2024 lumbar or the folder format, every study; levels
placed and cut as ``spinegrade finetune`` does, partial labels scored as the sets they are).

Reports per head balanced accuracy (with a 95 % bootstrap interval over cases), quadratic-weighted
kappa, expected calibration error (with the bundle's temperatures, and without them for comparison),
and the RSNA 2024 weighted log loss on the heads it covers; checks the issue's targets (balanced
accuracy >= 0.85 on every head, >= 0.90 on Pfirrmann, narrowing and central canal stenosis;
ECE <= 0.05). For a model that reads the axial T2, the crops that have one are also graded with it
hidden (``by_axial``): what the axial series adds, measured on the same levels. The grade shown at
other operating points (``--sensitivity`` of the pipeline, grading/decision.py) is scored too
(``operating_points``): balanced accuracy, plain accuracy and per-grade recall at each of
``SENSITIVITIES``; the probabilities, and so ECE and the log losses, do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

log = logging.getLogger("spinegrade")

TARGET_BACC = 0.85
TARGET_BACC_KEY = 0.90
KEY_HEADS = ("pfirrmann", "disc_narrowing", "central_canal_stenosis")
TARGET_ECE = 0.05
FEW_CROPS = 10  # a grade held by fewer crops than this moves a head's balanced accuracy by several points a crop
SENSITIVITIES = (0.0, 0.5, 1.0)  # operating points scored beside the default (0)


def register_evaluate(subparsers) -> None:
    e = subparsers.add_parser("grading", help="measure a grading bundle on generated crops (seeds never trained on)")
    e.add_argument("--bundle", type=Path, help="bundle folder (default: the installed spinegrade_grading)")
    e.add_argument("--seeds", metavar="A:B", help="generator seeds to evaluate on (profile 'eval'; default 200000:200040)")
    e.add_argument("--prepared", nargs="*", type=Path, default=[], help="folders of prepared eval crops (grading-eval-*.npz)")
    e.add_argument("--cache", type=Path, help="folder to prepare eval crops into (default: a temporary folder)")
    e.add_argument("--workers", type=int, default=0)
    e.add_argument("--dataset", type=Path, help="measure on every study of this labelled dataset instead "
                                                 "(SPIDER, RSNA 2024 lumbar or the folder format)")
    e.add_argument("--dataset-kind", choices=["spider", "rsna", "folder"], help="the dataset's kind (default: detected)")
    e.add_argument("--spider-series", choices=["main", "all"], default="main")
    e.add_argument("--locate", choices=["auto", "pipeline", "dataset"], default="auto",
                   help="how dataset levels are placed (see spinegrade finetune grading --help)")
    e.add_argument("--max-outside", type=float, default=0.3)
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", type=Path, help="write the figures as JSON")
    e.set_defaults(func=evaluate_grading_command)


def evaluate_bundle(bundle: Path, crops, device: str = "cpu") -> Dict[str, object]:
    import torch

    from .infer import Grader
    from .training_run import evaluate_outputs, raw_outputs

    grader = Grader.load(bundle, device)
    raw = raw_outputs(grader.network, crops, grader.device)
    calibrated = evaluate_outputs(raw, crops, grader.temperatures)
    uncalibrated = evaluate_outputs(raw, crops)
    add_intervals(calibrated, raw, crops, grader.temperatures)
    # per contrast: Pfirrmann (nucleus water on T2) and Modic types (T1 against T2 signal) are defined by
    # particular sequences; on T1 or randomised contrast the image may not hold the answer at all
    by_contrast = {}
    for c in sorted(set(map(str, crops.contrast))):
        m = np.asarray(crops.contrast).astype(str) == c
        sub = evaluate_outputs(raw[torch.as_tensor(m)], crops.subset(m), grader.temperatures)
        by_contrast[c] = {h: {"balanced_accuracy": v["balanced_accuracy"], "ece": v["ece"], "n": v["n"]}
                          for h, v in sub["heads"].items()}
    by_axial = axial_effect(grader, crops, raw)
    points = operating_points(grader, raw, crops)
    checks = {}
    for h, m in calibrated["heads"].items():
        need = TARGET_BACC_KEY if h in KEY_HEADS else TARGET_BACC
        checks[h] = {"balanced_accuracy_ok": bool(m["balanced_accuracy"] >= need), "ece_ok": bool(m["ece"] <= TARGET_ECE)}
    return {"bundle": str(bundle), "crops": len(crops), "cases": int(len(np.unique(crops.case))),
            "calibrated": calibrated, "uncalibrated": uncalibrated, "by_contrast": by_contrast, "by_axial": by_axial,
            "operating_points": points, "targets": checks,
            "all_targets_met": all(all(c.values()) for c in checks.values())}


def add_intervals(figures: Dict[str, object], raw, crops, temperatures) -> None:
    """Add each head's 95 % case-bootstrap interval of balanced accuracy (``balanced_accuracy_ci``)."""
    from .heads import probabilities
    from .metrics import balanced_accuracy_interval
    from ..names import HEAD_NAMES

    probs = probabilities(raw, temperatures)
    for h, m in figures["heads"].items():
        t = crops.targets[:, HEAD_NAMES.index(h)]
        ok = t >= 0
        m["balanced_accuracy_ci"] = list(balanced_accuracy_interval(t[ok], probs[h][ok].argmax(1), crops.case[ok]))


def operating_points(grader, raw, crops, sensitivities: Sequence[float] = SENSITIVITIES) -> Dict[str, object]:
    """Per sensitivity (its text as key) and head: balanced accuracy, accuracy and per-grade recall of
    the grade shown at that operating point, with the bundle's priors ({} for a bundle without)."""
    from ..names import HEAD_NAMES, HEADS
    from .decision import decide, decision_weights
    from .heads import probabilities
    from .metrics import balanced_accuracy, recall_per_class

    if not grader.priors:
        return {}
    probs = probabilities(raw, grader.temperatures)
    out = {}
    for s in sensitivities:
        weights = decision_weights(grader.priors, s)
        heads = {}
        for h, p in probs.items():
            t = crops.targets[:, HEAD_NAMES.index(h)]
            ok = t >= 0
            if not ok.any():
                continue
            pred = decide(np.asarray(p)[ok], weights.get(h))
            heads[h] = {"balanced_accuracy": balanced_accuracy(t[ok], pred), "accuracy": float((pred == t[ok]).mean()),
                        "recall": recall_per_class(t[ok], pred, len(HEADS[h]))[0]}
        out[f"{s:g}"] = {"heads": heads,
                         "mean_balanced_accuracy": float(np.mean([v["balanced_accuracy"] for v in heads.values()])),
                         "mean_accuracy": float(np.mean([v["accuracy"] for v in heads.values()]))}
    return out


def operating_point_lines(points: Dict[str, object]) -> list:
    """The balanced and plain accuracy of the grade shown at each scored sensitivity."""
    if len(points) < 2:
        return []
    ss = list(points)
    lines = ["the grade shown at other operating points (--sensitivity; balanced accuracy / accuracy):",
             f"{'head':<32}" + "".join(f"{'s=' + s:>14}" for s in ss)]
    for h in points[ss[0]]["heads"]:
        lines.append(f"{h:<32}" + "".join(
            f"{points[s]['heads'][h]['balanced_accuracy']:>8.3f} /{points[s]['heads'][h]['accuracy']:.2f}" for s in ss))
    lines.append(f"{'mean':<32}" + "".join(
        f"{points[s]['mean_balanced_accuracy']:>8.3f} /{points[s]['mean_accuracy']:.2f}" for s in ss))
    return lines


def axial_effect(grader, crops, raw) -> Optional[Dict[str, object]]:
    """Per head balanced accuracy and ECE on the crops with an axial T2, with it and with it hidden
    (None for a sagittal-only model or crops without any axial)."""
    import torch

    from .training_run import evaluate_outputs, raw_outputs

    m = crops.has_axial
    if not grader.uses_axial or not m.any():
        return None
    sub = crops.subset(m)
    with_ax = evaluate_outputs(raw[torch.as_tensor(m)], sub, grader.temperatures)
    hidden = evaluate_outputs(raw_outputs(grader.network, sub.without_axial(), grader.device), sub, grader.temperatures)
    pick = lambda e: {h: {"balanced_accuracy": v["balanced_accuracy"], "ece": v["ece"], "n": v["n"]}  # noqa: E731
                      for h, v in e["heads"].items()}
    return {"crops": int(m.sum()), "with_axial": pick(with_ax), "sagittal_only": pick(hidden),
            "rsna": {"with_axial": with_ax["rsna"]["score"], "sagittal_only": hidden["rsna"]["score"]}}


def format_report(r: Dict[str, object]) -> str:
    lines = [f"{r['crops']} crops from {r['cases']} {r.get('source', 'generated cases')}; bundle {r['bundle']}",
             f"{'head':<32}{'bal.acc':>8}{'95% CI':>13}{'QWK':>7}{'ECE':>7}{'ECE(T=1)':>9}{'n':>6}  target"]
    cal, unc = r["calibrated"]["heads"], r["uncalibrated"]["heads"]
    for h, m in cal.items():
        ok = r["targets"][h]
        flag = "ok" if all(ok.values()) else "MISSED " + ",".join(k.split("_ok")[0] for k, v in ok.items() if not v)
        lo, hi = m.get("balanced_accuracy_ci", (float("nan"), float("nan")))
        lines.append(f"{h:<32}{m['balanced_accuracy']:>8.3f}{f'{lo:.2f}-{hi:.2f}':>13}{m['qwk']:>7.3f}{m['ece']:>7.3f}{unc[h]['ece']:>9.3f}{m['n']:>6}  {flag}")
    lines += per_grade_lines(cal)
    bc = r.get("by_contrast", {})
    if len(bc) > 1:
        cs = list(bc)
        lines.append("balanced accuracy by contrast (n crops): " + ", ".join(
            f"{c} ({max((v['n'] for v in bc[c].values()), default=0)})" for c in cs))
        lines.append(f"{'head':<32}" + "".join(f"{c:>9}" for c in cs))
        for h in cal:
            lines.append(f"{h:<32}" + "".join(f"{bc[c][h]['balanced_accuracy']:>9.3f}" if h in bc[c] else f"{'-':>9}"
                                              for c in cs))
    ax = r.get("by_axial")
    if ax:
        lines.append(f"with the axial T2 and with it hidden, on the {ax['crops']} crops that have one (balanced accuracy):")
        lines.append(f"{'head':<32}{'axial':>9}{'hidden':>9}")
        for h, v in ax["with_axial"].items():
            lines.append(f"{h:<32}{v['balanced_accuracy']:>9.3f}{ax['sagittal_only'][h]['balanced_accuracy']:>9.3f}")
        lines.append(f"{'RSNA 2024 weighted log loss':<32}{ax['rsna']['with_axial']:>9.3f}{ax['rsna']['sagittal_only']:>9.3f}")
    lines += operating_point_lines(r.get("operating_points") or {})
    rs = r["calibrated"]["rsna"]
    lines.append("RSNA 2024 weighted log loss: " + ", ".join(f"{k} {v:.3f}" for k, v in rs.items()))
    nll = r["calibrated"].get("set_nll", {})
    if nll:
        lines.append("held-out set likelihood loss per head (partial labels as sets): "
                     + ", ".join(f"{h} {v:.3f}" for h, v in nll.items()))
    lines.append("all targets met" if r["all_targets_met"] else "targets missed (see above)")
    return "\n".join(lines)


def per_grade_lines(heads: Dict[str, Dict[str, object]]) -> list:
    """Each head's recall per grade with its number of crops, and the grades too rare to trust."""
    from ..names import HEADS

    lines = [f"recall per grade (crops); balanced accuracy is the mean over the grades present, "
             f"* = fewer than {FEW_CROPS} crops:"]
    few = []
    for h, m in heads.items():
        cells = []
        for g, rec, n in zip(HEADS[h], m["recall"], m["support"]):
            if n == 0:
                cells.append(f"{g}: -")
                continue
            cells.append(f"{g}: {rec:.2f} ({n}{'*' if n < FEW_CROPS else ''})")
            if n < FEW_CROPS:
                few.append(f"{h} grade {g} ({n} crop{'s' if n > 1 else ''})")
        lines.append(f"{h:<32}" + "  ".join(cells))
    if few:
        lines.append("balanced accuracy rests on a handful of crops for: " + ", ".join(few))
    return lines


def evaluate_grading_command(args: argparse.Namespace) -> int:
    import tempfile

    from ..errors import DatasetError, ModelError
    from ..models.bundle import find_bundle
    from .bundle_card import BUNDLE_NAME
    from .data import CropSet, load_prepared

    bundle = find_bundle(BUNDLE_NAME, args.bundle)
    if bundle is None:
        raise ModelError(f"no grading bundle installed ('{BUNDLE_NAME}'); pass --bundle")
    sets = [load_prepared(args.prepared, "eval")] if args.prepared else []
    source = "generated cases"
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset is not None:
            from .dataset_crops import open_labelled, prepare_dataset

            ds = open_labelled(args.dataset, args.dataset_kind, args.spider_series)
            studies = prepare_dataset(ds, args.cache or Path(tmp), args.locate, None, args.device, args.max_outside)
            sets.append(CropSet.concat([st.crops for st in studies]))
            source = f"patients of the {ds.kind} dataset at {ds.root}"
        elif args.seeds or not args.prepared:
            from .prepare import default_workers, parse_seeds, prepare_seeds

            folder = args.cache or Path(tmp)
            seeds = parse_seeds(args.seeds or "200000:200040")
            prepare_seeds(seeds, "eval", folder, args.workers or default_workers())
            sets.append(load_prepared([folder], "eval").subset(slice(None)))
        crops = CropSet.concat(sets)
        if len(crops) == 0:
            raise DatasetError("no evaluation crops (grading-eval-*.npz) found")
        report = evaluate_bundle(bundle, crops, args.device)
    report["source"] = source
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0
