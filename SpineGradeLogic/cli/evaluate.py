"""``spinegrade evaluate MODEL``: measure a model on held-out real scans and generated cases.

    spinegrade evaluate vertebrae --real ../shared/data/real-dev --sct ../shared/data/real-dev --generated 1

Real scans: exactly the bundle's held-out validation scans (its metadata records them, under
``spinegrade.training.split.real_validation``); ``--cases`` names others explicitly instead.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("spinegrade")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model (figures printed, optionally written as JSON)")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    v = models.add_parser("vertebrae", help="vertebra labelling and disc localisation (issue 4's figures)",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--real", type=Path, help="folder of real scans (vb3-*/image.nii.gz + vertebrae.nii.gz), e.g. real-dev")
    v.add_argument("--sct", type=Path, help="the sct-t2_lumbar folder (or a folder holding it)")
    v.add_argument("--generated", type=int, default=0, metavar="N",
                   help="N generated cases per field of view and contrast (seeds 10000+, never trained on)")
    v.add_argument("--fov", nargs="+", default=None, help="fields of view for --generated (default: all)")
    v.add_argument("--contrast", nargs="+", default=None, help="contrasts for --generated (default: T1 T2 STIR random)")
    v.add_argument("--bundle", type=Path, help="the vertebra bundle (default: the installed one)")
    v.add_argument("--outline", type=Path, help="the body-outline bundle (default: the installed one, if any)")
    v.add_argument("--no-outline", action="store_true", help="keep the vertebra network's own body outlines")
    v.add_argument("--cases", nargs="+", metavar="NAME", help="real cases to use instead of the bundle's validation split")
    v.add_argument("--oracle", action="store_true",
                   help="replace the network by the ground truth: measures the decoder and disc localisation alone")
    v.add_argument("--device", default="cpu")
    v.add_argument("--json", type=Path, help="write per-case figures to this JSON file")
    v.set_defaults(func=evaluate_vertebrae_command)
    from ..grading.evaluate import register_evaluate

    register_evaluate(models)


def evaluate_vertebrae_command(args: argparse.Namespace) -> int:
    from ..errors import ModelError
    from ..evaluation import evaluate_vertebrae as E
    from ..models.bundle import find_bundle
    from ..pipeline.context import RunOptions
    from ..pipeline.vertebra_stage import BUNDLE, OUTLINE_BUNDLE, load_model, load_outline

    path = find_bundle(BUNDLE, args.bundle)
    model = None
    if path is None and not args.oracle:
        raise ModelError(f"no vertebra model installed (bundle '{BUNDLE}'); pass --bundle PATH, or --oracle")
    if path is not None and not args.oracle:
        model = load_model(path, args.device)
        print(f"model: {path} (version {model.version}, sha256 {model.sha256[:12]}...)")
    else:
        print("predictor: oracle (ground-truth masks and levels; the network is not used)")
    chosen = RunOptions(bundles={OUTLINE_BUNDLE: args.outline} if args.outline else {})
    outline = None if args.no_outline else load_outline(chosen, args.device)  # as a run would find it
    if outline is not None:
        print(f"body outlines: {outline.path} (version {outline.version}, sha256 {outline.sha256[:12]}...)")
    else:
        print("body outlines: the vertebra network's own (no outline bundle used)")
    outline = outline.network if outline is not None else None

    all_cases, lines = [], []
    if args.real:
        names = list(args.cases or [])
        if not names:
            split = E.bundle_split(path)
            if split is None:
                print("real scans: the bundle records no real_validation split; skipped (name scans with --cases)")
            names = split or []
        elif path is not None:
            print("real scans: chosen with --cases, not the bundle's validation split")
        if names and not Path(args.real).is_dir():
            print(f"real scans: {args.real} not found; skipped")
            names = []
        if names:
            real = E.evaluate_real(args.real, names, model, args.device, args.oracle, outline)
            all_cases += real
            lines += E.summary_lines(real, f"real scans held out ({len(real)}: {' '.join(c.name for c in real)}), bodies L1-L5")
    if args.sct:
        folder = Path(args.sct)
        folder = folder / "sct-t2_lumbar" if (folder / "sct-t2_lumbar").is_dir() else folder
        if not (folder / "meta.json").is_file():
            print(f"sct-t2_lumbar: {folder} not found; skipped")
        elif args.oracle:
            print("sct-t2_lumbar: has no masks, so no oracle; skipped")
        else:
            sct = E.evaluate_sct(folder, model, args.device, outline)
            all_cases.append(sct)
            lines += E.sct_lines(sct)
    if args.generated > 0:
        gen = E.evaluate_generated(args.generated, model, args.device, args.fov or E.FOVS, args.contrast or E.CONTRASTS,
                                   args.oracle, outline=outline)
        all_cases += gen
        lines += E.summary_lines(gen, f"generated cases ({len(gen)})")
        for key in ("fov", "contrast"):
            for value, group in E.group_by(gen, key).items():
                lines += [l.replace("==", "--", 2) for l in E.summary_lines(group, f"generated, {key} {value}")]
    print("\n".join(lines) if lines else "nothing to evaluate: give --real, --sct or --generated")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(E.report_json(all_cases), indent=1))
        print(f"per-case figures: {args.json}")
    return 0
