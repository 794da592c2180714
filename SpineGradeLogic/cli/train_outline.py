"""``spinegrade train outline``: the body-outline model, trained on what the vertebra model draws.

    spinegrade train outline --real ../shared/data/real-dev --generated-seeds 60000:60048 \\
        --cache outline-cache --out spinegrade_body_outline

Real scans: the vertebra bundle's own training scans (its metadata's ``real_train``) where the folder
holds them, otherwise every scan folder in it; the vertebra bundle's held-out scans are never used,
so they stay unseen by both models. ``--validation-share`` of the real scans select the best step.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from .train import share

log = logging.getLogger("spinegrade")


def seed_list(text: str) -> list:
    """An argparse type: ``A:B`` (B excluded) or ``A,B,C`` -> seeds, as ``train grading`` reads them."""
    from ..grading.prepare import parse_seeds

    try:
        seeds = parse_seeds(text)
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seeds (A:B with A < B, or A,B,C)")
    return seeds


def register_outline(models) -> None:
    o = models.add_parser("outline", help="the body-outline model (redraws the vertebral bodies at 1 mm)",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    o.add_argument("--real", type=Path, help="folder of real scans (vb3-*/image.nii.gz + vertebrae.nii.gz)")
    o.add_argument("--generated-seeds", type=seed_list, default=[], metavar="A:B",
                   help="generated training cases, seeds A to B-1 (never the evaluation's 10000+)")
    o.add_argument("--cache", type=Path, required=True, help="folder for the prepared cases (reused by later runs)")
    o.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    o.add_argument("--vertebra-bundle", type=Path, help="the vertebra bundle whose outlines are corrected (default: installed)")
    o.add_argument("--steps", type=int, default=3000)
    o.add_argument("--batch-size", type=int, default=32)
    o.add_argument("--lr", type=float, default=2e-3)
    o.add_argument("--every", type=int, default=250, help="validate every this many steps")
    o.add_argument("--validation-share", type=share, default=0.15, help="share of the real training scans used for validation")
    o.add_argument("--real-share", type=share, default=0.7, help="share of each batch drawn from real scans")
    o.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="cpu")
    o.add_argument("--version", default="0.1.0")
    o.add_argument("--changelog", default="trained with spinegrade train outline")
    o.set_defaults(func=train_outline_command)


def train_outline_command(args: argparse.Namespace) -> int:
    from ..errors import InputError, ModelError
    from ..evaluation.evaluate_vertebrae import bundle_split
    from ..models.bundle import find_bundle, save_bundle
    from ..pipeline.vertebra_stage import BUNDLE, load_model
    from ..vertebrae.cases import split_names
    from ..vertebrae.outline_bundle import outline_metadata, outline_model_card
    from ..vertebrae.outline_cases import load_cached, prepare_cases
    from ..vertebrae.outline_model import NETWORK_KWARGS
    from ..vertebrae.outline_train import train_outline
    from .progress import Progress

    vpath = find_bundle(BUNDLE, args.vertebra_bundle)
    if vpath is None:
        raise ModelError(f"no vertebra model installed (bundle '{BUNDLE}'); pass --vertebra-bundle PATH")
    model = load_model(vpath, args.device)
    meta = json.loads((vpath / "configs" / "metadata.json").read_text())
    real_train = list(meta.get("spinegrade", {}).get("training", {}).get("split", {}).get("real_train", []))
    held_out = set(bundle_split(vpath) or [])
    names = []
    if args.real is not None:
        available = sorted(p.parent.name for p in Path(args.real).glob("*/vertebrae.nii.gz") if p.parent.name not in held_out)
        # the vertebra bundle's own training scans where they are there; otherwise (your own cohort) every scan
        names = [n for n in available if n in real_train] or available
        if not names:
            raise InputError(f"{args.real}: no scan folder with image.nii.gz and vertebrae.nii.gz (outside the vertebra "
                             "bundle's held-out scans)")
    if not names and not args.generated_seeds:
        raise InputError("nothing to train on: give --real and/or --generated-seeds")
    fit_names, val_names = split_names(names, args.validation_share) if names else ([], [])

    bar = Progress("preparing")
    paths = prepare_cases(args.cache, model, args.real, names, args.generated_seeds, args.device, bar)
    bar.close()
    cases = {p.name[:-4]: c for p in paths if (c := load_cached(p)) is not None}
    train = [c for n, c in cases.items() if n not in val_names]
    val = [cases[n] for n in val_names if n in cases]
    log.info("outline training: %d cases (%d real), %d validation scans", len(train),
             sum(c.kind == "real" for c in train), len(val))

    bar = Progress("training")
    fit = train_outline(train, val, steps=args.steps, batch=args.batch_size, lr=args.lr, every=args.every,
                        seed=args.seed, device=args.device, time_limit=args.time_limit, real_share=args.real_share,
                        progress=lambda step, rec: bar(step, args.steps, f"dice {rec.get('val_dice', float('nan')):.4f}"))
    bar.close()
    seeds = list(args.generated_seeds)
    record = {
        "command": "spinegrade " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "spinegrade train outline",
        "vertebra_bundle": str(vpath), "vertebra_bundle_sha256": model.sha256,
        "real_train": [n for n in fit_names if n in cases], "real_validation": [c.name for c in val],
        "generated_seeds": seeds, "generated_seed_range": f"{seeds[0]}-{seeds[-1]}" if seeds else "none",
        "real_share": args.real_share, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "history": fit.history, "best_step": fit.best_step, "best_val_dice": fit.best_dice, "val_input_dice": fit.input_dice,
        "n_train_patches": fit.n_train_patches, "n_val_patches": fit.n_val_patches,
    }
    save_bundle(args.out, fit.network, NETWORK_KWARGS, outline_metadata(args.version, args.changelog, record),
                outline_model_card(record))
    log.info("bundle written: %s (best step %d, validation Dice %.4f)", args.out, fit.best_step, fit.best_dice)
    return 0
