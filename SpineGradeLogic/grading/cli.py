"""``spinegrade train grading``: prepare generated crops (cached), train, calibrate, write the bundle.

Hooked into ``spinegrade train`` by ``cli/train.py`` calling :func:`register_grading` with the
``train`` command's model subparsers.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("spinegrade")


def register_grading(models) -> None:
    g = models.add_parser("grading", help="the disc grading model (13 heads, calibrated probabilities)",
                          description="Prepare crops from generated cases (cached as npz), train the grading network, "
                                      "fit one temperature per head on held-out crops and write the bundle.")
    g.add_argument("--generated-seeds", metavar="A:B", help="generator seeds for training crops (profile 'train'), B excluded")
    g.add_argument("--calibration-seeds", metavar="C:D",
                   help="seeds for held-out crops (generator defaults) used for early stopping and temperatures; "
                        "default: 15%% of the training cases")
    g.add_argument("--prepared", nargs="*", type=Path, default=[], help="folders of prepared crops (grading-*.npz)")
    g.add_argument("--cache", type=Path, help="folder where crops are prepared (and reused by later runs)")
    g.add_argument("--prepare-only", action="store_true", help="prepare the crops, then stop (no torch training)")
    g.add_argument("--workers", type=int, default=0, help="processes preparing crops (default: every CPU)")
    g.add_argument("--out", type=Path, help="bundle folder to write (required unless --prepare-only)")
    g.add_argument("--checkpoint", type=Path, help="checkpoint file (default OUT.checkpoint.pt); resumed from")
    g.add_argument("--epochs", type=int, default=40)
    g.add_argument("--steps", type=int, default=200, help="steps per epoch")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--patience", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu")
    g.add_argument("--time-limit", type=float, help="stop after the epoch that passes this many seconds")
    g.add_argument("--version", default="0.1.0", help="bundle version")
    g.add_argument("--changelog", default="trained with spinegrade train grading")
    g.set_defaults(func=train_grading_command)


def train_grading_command(args: argparse.Namespace) -> int:
    from ..errors import DatasetError

    folders = list(args.prepared)
    if args.generated_seeds or args.calibration_seeds:
        if args.cache is None:
            raise DatasetError("--generated-seeds / --calibration-seeds need --cache (the folder crops are prepared into)")
        from .prepare import default_workers, parse_seeds, prepare_seeds  # SimpleITK: only where crops are prepared

        workers = args.workers or default_workers()
        prepare_seeds(parse_seeds(args.generated_seeds), "train", args.cache, workers)
        prepare_seeds(parse_seeds(args.calibration_seeds), "calibration", args.cache, workers)
        folders.append(args.cache)
    elif args.cache is not None:
        folders.append(args.cache)
    if args.prepare_only:
        return 0
    if args.out is None:
        raise DatasetError("--out BUNDLE is required to train")
    from ..models.bundle import save_bundle
    from .bundle_card import grading_metadata, grading_model_card
    from .network import NETWORK_KWARGS
    from .training_run import GradingTrainingConfig, train_grading_model, training_record, write_record

    cfg = GradingTrainingConfig(prepared=folders, epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
                                lr=args.lr, patience=args.patience, seed=args.seed, device=args.device,
                                time_limit_s=args.time_limit)
    checkpoint = args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.pt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    outcome = train_grading_model(cfg, checkpoint)
    command = "spinegrade " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "spinegrade train grading"
    record = json.loads(json.dumps(training_record(cfg, outcome, command), default=float))
    write_record(checkpoint.with_suffix(".record.json"), record)
    save_bundle(args.out, outcome["network"], NETWORK_KWARGS,
                grading_metadata(args.version, args.changelog, outcome["temperatures"], record), grading_model_card(record),
                network_class_name="SpineGradeLogic.grading.network.GradingNet")
    held = outcome["held_out"]["calibrated"]
    log.info("bundle written: %s (best epoch %d; held-out mean balanced accuracy %.3f, max ECE %.3f)", args.out,
             outcome["fit"].best_epoch, held["mean_balanced_accuracy"], held["max_ece"])
    return 0
