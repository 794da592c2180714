"""``spinegrade train grading`` and ``spinegrade finetune grading``.

Training data: crops prepared from generated cases (``--generated-seeds``, cached as npz), and/or
crops from a labelled dataset (``--dataset``: SPIDER, RSNA 2024 lumbar or the folder format,
placed and cut by ``grading/dataset_crops.py``). ``finetune`` is ``train`` starting from a bundle
(the installed ``spinegrade_grading`` unless ``--init`` names another), with gentler defaults.

Hooked into ``spinegrade train`` / ``spinegrade finetune`` by ``cli/train.py`` and ``cli/finetune.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("spinegrade")

TRAIN_DEFAULTS = dict(epochs=40, steps=200, lr=2e-3, patience=10)
FINETUNE_DEFAULTS = dict(epochs=20, steps=100, lr=3e-4, patience=5)


def _add_arguments(g: argparse.ArgumentParser, finetune: bool) -> None:
    d = FINETUNE_DEFAULTS if finetune else TRAIN_DEFAULTS
    data = g.add_argument_group("data")
    data.add_argument("--dataset", type=Path, help="a labelled dataset folder: SPIDER, RSNA 2024 lumbar or the folder format "
                                                    "(docs/datasets.md)")
    data.add_argument("--dataset-kind", choices=["spider", "rsna", "folder"], help="the dataset's kind (default: detected)")
    data.add_argument("--spider-series", choices=["main", "all"], default="main",
                      help="SPIDER: one series per patient (T2 first) or every series")
    data.add_argument("--locate", choices=["auto", "pipeline", "dataset"], default="auto",
                      help="how dataset levels are placed: the vertebra model as at inference, the dataset's own anchors, "
                           "or the model where it finds the level and the anchors elsewhere (default)")
    data.add_argument("--vertebra-bundle", type=Path, help="vertebra model used to place dataset levels (default: installed)")
    data.add_argument("--validation-share", type=float, default=0.2,
                      help="share of a dataset's patients held out (unless the dataset has its own validation subset)")
    data.add_argument("--max-outside", type=float, default=0.3,
                      help="skip dataset crops more than this share outside the image (the grading stage's limit)")
    data.add_argument("--generated-seeds", metavar="A:B", help="generator seeds for training crops (profile 'train'), B excluded")
    data.add_argument("--calibration-seeds", metavar="C:D",
                      help="seeds for held-out crops (generator defaults) used for early stopping and temperatures; "
                           "default: 15%% of the training cases")
    data.add_argument("--prepared", nargs="*", type=Path, default=[], help="folders of prepared crops (grading-*.npz)")
    data.add_argument("--cache", type=Path, help="folder where crops are prepared (and reused by later runs)")
    data.add_argument("--prepare-only", action="store_true", help="prepare the crops, then stop (no torch training)")
    data.add_argument("--workers", type=int, default=0, help="processes preparing generated crops (default: every CPU)")
    t = g.add_argument_group("training")
    t.add_argument("--out", type=Path, help="bundle folder to write (required unless --prepare-only)")
    t.add_argument("--init", type=Path, help="start from this bundle's weights"
                   + (" (default: the installed spinegrade_grading)" if finetune else " (fine-tuning)"))
    t.add_argument("--checkpoint", type=Path, help="checkpoint file (default OUT.checkpoint.pt); resumed from")
    t.add_argument("--epochs", type=int, default=d["epochs"])
    t.add_argument("--steps", type=int, default=d["steps"], help="steps per epoch")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=d["lr"])
    t.add_argument("--patience", type=int, default=d["patience"], help="stop after this many epochs without improvement")
    t.add_argument("--monitor", choices=["balanced_accuracy", "nll"],
                   help="what early stopping watches on the held-out crops (default: nll with --dataset, whose "
                        "partial labels bias exact-label accuracy; balanced_accuracy otherwise)")
    t.add_argument("--recalibrate", type=Path, metavar="BUNDLE",
                   help="do not train: refit BUNDLE's per-head temperatures on every calibration crop in --prepared "
                        "and write the result to --out (weights unchanged)")
    t.add_argument("--measure-weight", type=float, default=0.5,
                   help="weight of the auxiliary loss on the generator's measurements behind the grades, on crops "
                        "that have them (generated crops prepared since 0.3.0); 0: grades only")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bfloat16 mixed precision where the device has it in hardware (a CPU with AVX-512-BF16 "
                        "or AMX, a recent GPU), float32 elsewhere (default auto)")
    t.add_argument("--time-limit", type=float, help="stop after the epoch that passes this many seconds")
    t.add_argument("--version", default=None if finetune else "0.1.0",
                   help="bundle version" + (" (default: the starting bundle's, +finetuned)" if finetune else ""))
    t.add_argument("--changelog", default=("fine-tuned" if finetune else "trained") + " with spinegrade "
                   + ("finetune" if finetune else "train") + " grading")
    g.set_defaults(func=train_grading_command, finetune=finetune)


def register_grading(models, finetune: bool = False) -> None:
    if finetune:
        g = models.add_parser("grading", help="fine-tune the disc grading model on a labelled dataset",
                              description="Start from a grading bundle (the installed one by default), train on a "
                                          "SPIDER, RSNA 2024 or folder-format dataset (and, optionally, generated "
                                          "crops), refit the temperatures on held-out patients and write a new bundle.")
    else:
        g = models.add_parser("grading", help="the disc grading model (13 heads, calibrated probabilities)",
                              description="Prepare crops from generated cases and/or a labelled dataset (cached as npz), "
                                          "train the grading network, fit one temperature per head on held-out crops "
                                          "and write the bundle.")
    _add_arguments(g, finetune)


def _recalibrate(args, folders) -> int:
    from ..models.bundle import save_bundle
    from .bundle_card import grading_metadata, grading_model_card
    from .network import NETWORK_KWARGS
    from .recalibrate import recalibrated, recalibration_record

    if args.dataset is not None:
        raise DatasetError("--recalibrate refits on prepared calibration crops (--prepared), not on a --dataset")
    out = recalibrated(args.recalibrate, folders, args.device)
    command = "spinegrade " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else \
        "spinegrade train grading --recalibrate"
    version, changelog, record = recalibration_record(out, command)
    save_bundle(args.out, out["network"], record.get("network_kwargs") or NETWORK_KWARGS,
                grading_metadata(version, changelog, out["temperatures"], record), grading_model_card(record),
                network_class_name="SpineGradeLogic.grading.network.GradingNet")
    cal, before = out["held_out"]["calibrated"], out["held_out"]["before"]
    log.info("bundle written: %s (temperatures refitted on %d held-out crops; max ECE %.3f -> %.3f, set NLL %.3f -> %.3f)",
             args.out, out["held_out"]["crops"], before["max_ece"], cal["max_ece"], before["mean_set_nll"], cal["mean_set_nll"])
    return 0


def _dataset_sets(args):
    """(train, held, record) of the dataset's crops, prepared into the cache."""
    from ..errors import DatasetError
    from .dataset_crops import open_labelled, prepare_dataset, split_studies

    ds = open_labelled(args.dataset, args.dataset_kind, args.spider_series)
    for w in ds.warnings:
        log.warning("%s", w)
    if args.cache is not None:
        cache = args.cache
    elif args.out is not None:
        cache = args.out.with_name(args.out.name + ".crops")  # beside the bundle, reused by a rerun
    else:
        raise DatasetError("--dataset needs --cache or --out (crops are prepared beside the bundle)")
    studies = prepare_dataset(ds, cache, args.locate, args.vertebra_bundle, args.device, args.max_outside)
    train, held, split = split_studies(studies, args.validation_share, args.seed)
    placed = {}
    for s in studies:
        for how in s.placed.values():
            placed[how] = placed.get(how, 0) + 1
    record = {"path": str(args.dataset), "kind": ds.kind, "studies": len(studies), "heads": ds.heads(),
              "levels_placed_by": placed, "locate": args.locate, "split": split,
              "training_crops": len(train), "held_out_crops": len(held)}
    return train, held, record


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
    elif args.cache is not None and args.dataset is None:
        folders.append(args.cache)
    if args.dataset is None and not folders:
        raise DatasetError("nothing to train on: give --dataset, --generated-seeds or --prepared")
    if args.out is None and not args.prepare_only:
        raise DatasetError("--out BUNDLE is required to train")
    if getattr(args, "recalibrate", None) is not None and not args.prepare_only:
        return _recalibrate(args, folders)
    init = args.init
    if args.finetune and init is None:
        from ..models.bundle import find_bundle
        from .bundle_card import BUNDLE_NAME

        init = find_bundle(BUNDLE_NAME)
        if init is None:
            raise DatasetError("finetune starts from a grading bundle: none is installed; name one with --init")
    from .training_run import GradingTrainingConfig

    cfg = GradingTrainingConfig(prepared=folders, epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
                                lr=args.lr, patience=args.patience, seed=args.seed, device=args.device,
                                time_limit_s=args.time_limit, init=init, measure_weight=args.measure_weight,
                                precision=args.precision,
                                monitor=args.monitor or ("nll" if args.dataset is not None else "balanced_accuracy"))
    train = held = dataset_record = None
    if args.dataset is not None:
        train, held, dataset_record = _dataset_sets(args)
    if args.prepare_only:
        return 0
    from ..models.bundle import save_bundle
    from .bundle_card import grading_metadata, grading_model_card
    from .data import CropSet, load_prepared
    from .network import NETWORK_KWARGS
    from .training_run import train_grading_model, training_record, write_record

    if train is not None and folders:  # every generated crop joins the dataset's training side (heads it does not
        gen_train = load_prepared(folders, "train")  # grade); validation and temperatures stay on the dataset
        train = CropSet.concat([train, gen_train])
        dataset_record["generated_training_crops"] = len(gen_train)
    checkpoint = args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.pt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    outcome = train_grading_model(cfg, checkpoint, train, held)
    command = "spinegrade " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else \
        f"spinegrade {'finetune' if args.finetune else 'train'} grading"
    record = training_record(cfg, outcome, command)
    if dataset_record is not None:
        record["dataset"] = dataset_record
    record = json.loads(json.dumps(record, default=float))
    write_record(checkpoint.with_suffix(".record.json"), record)
    version = args.version or f"{(outcome.get('init') or {}).get('version', '0.0.0')}+finetuned"
    save_bundle(args.out, outcome["network"], NETWORK_KWARGS,
                grading_metadata(version, args.changelog, outcome["temperatures"], record), grading_model_card(record),
                network_class_name="SpineGradeLogic.grading.network.GradingNet")
    held_m = outcome["held_out"]["calibrated"]
    log.info("bundle written: %s (best epoch %d; held-out mean balanced accuracy %.3f, set NLL %.3f, max ECE %.3f)",
             args.out, outcome["fit"].best_epoch, held_m["mean_balanced_accuracy"], held_m["mean_set_nll"], held_m["max_ece"])
    return 0
