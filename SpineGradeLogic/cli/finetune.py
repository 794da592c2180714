"""``spinegrade finetune MODEL``: continue training a shipped (or given) bundle on your own data.

``finetune grading`` takes SPIDER, RSNA 2024 lumbar or folder-format datasets (``grading/cli.py``);
``finetune vertebrae`` is ``train vertebrae`` starting from the installed vertebra bundle.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model bundle on your own labelled data")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    from ..grading.cli import register_grading
    from .train import add_vertebra_arguments

    register_grading(models, finetune=True)
    v = models.add_parser("vertebrae", help="fine-tune the vertebra model (starts from the installed bundle)")
    add_vertebra_arguments(v, finetune=True)


def default_vertebra_init(args: argparse.Namespace) -> None:
    """Fill ``--init`` with the installed vertebra bundle (finetune), or fail naming what is missing."""
    if args.init is None:
        from ..errors import DatasetError
        from ..models.bundle import find_bundle
        from ..pipeline.vertebra_stage import BUNDLE

        args.init = find_bundle(BUNDLE)
        if args.init is None:
            raise DatasetError("finetune starts from a vertebra bundle: none is installed; name one with --init")
