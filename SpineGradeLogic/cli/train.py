"""``spinegrade train MODEL``: train a SpineGrade model with the project's own data and write its bundle."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("spinegrade")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model and write its MONAI bundle")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    v = models.add_parser("vertebrae", help="the vertebra segmentation and level model")
    add_vertebra_arguments(v)
    from ..grading.cli import register_grading  # no heavy imports: handlers import what they need

    register_grading(models)
    from .train_outline import register_outline

    register_outline(models)


def share(text: str) -> float:
    """An argparse type: a share between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def add_vertebra_arguments(v: argparse.ArgumentParser, finetune: bool = False) -> None:
    v.add_argument("--generated", nargs="*", type=Path, default=[], help="folders of generated cases (spinegrade phantom)")
    v.add_argument("--real", nargs="*", type=Path, default=[], help="folders of real cases with vertebrae.nii.gz")
    v.add_argument("--prepared", nargs="*", type=Path, default=[],
                   help="folders of prepared cases (generated-NAME.npz, real-NAME.npz) to train on as they are")
    v.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    v.add_argument("--cache", type=Path, help="folder for prepared cases (reused by later runs)")
    v.add_argument("--checkpoint", type=Path, help="checkpoint file (default OUT.checkpoint.pt); resumed from")
    v.add_argument("--epochs", type=int, default=30)
    v.add_argument("--steps", type=int, default=200, help="steps per epoch")
    v.add_argument("--batch-size", type=int, default=16)
    v.add_argument("--lr", type=float, default=2e-3)
    v.add_argument("--patience", type=int, default=8)
    v.add_argument("--real-validation-share", type=float, default=0.3)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu")
    v.add_argument("--workers", type=int, default=0, help="data-loading processes (0: in the training process)")
    v.add_argument("--init", type=Path, help="start from this bundle's weights"
                   + (" (default: the installed spinegrade_vertebrae)" if finetune else " (fine-tuning)"))
    v.add_argument("--real-share", type=share, default=0.5, help="share of training samples from real scans")
    v.add_argument("--fov-cut", type=share, default=0.0,
                   help="share of training samples whose field of view is cut off from below (no sacrum in view)")
    v.add_argument("--time-limit", type=float, help="stop after the epoch that passes this many seconds")
    v.add_argument("--version", default="0.1.0", help="bundle version")
    v.add_argument("--changelog", default=f"{'fine-tuned with spinegrade finetune' if finetune else 'trained with spinegrade train'} vertebrae")
    v.set_defaults(func=train_vertebrae_command, finetune=finetune)


def train_vertebrae_command(args: argparse.Namespace) -> int:
    if getattr(args, "finetune", False):
        from .finetune import default_vertebra_init

        default_vertebra_init(args)
    from ..models.bundle import save_bundle
    from ..vertebrae.bundle_card import vertebra_metadata, vertebra_model_card
    from ..vertebrae.network import NETWORK_KWARGS
    from ..vertebrae.training_run import VertebraTrainingConfig, train_vertebra_model, write_training_record

    cfg = VertebraTrainingConfig(
        generated=list(args.generated), real=list(args.real), prepared=list(args.prepared), real_validation_share=args.real_validation_share,
        epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, seed=args.seed, device=args.device, workers=args.workers, init=args.init, real_share=args.real_share, fov_cut=args.fov_cut, cache=args.cache, time_limit_s=args.time_limit,
    )
    checkpoint = args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.pt")
    outcome = train_vertebra_model(cfg, checkpoint)
    command = "spinegrade " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "spinegrade train vertebrae"
    record_path = checkpoint.with_suffix(".record.json")
    write_training_record(record_path, cfg, outcome, command)
    import json

    record = json.loads(record_path.read_text())
    save_bundle(args.out, outcome["network"], NETWORK_KWARGS, vertebra_metadata(args.version, args.changelog, record),
                vertebra_model_card(record))
    log.info("bundle written: %s (best epoch %d, score %.4f)", args.out, outcome["fit"].best_epoch, outcome["fit"].best_score)
    return 0
