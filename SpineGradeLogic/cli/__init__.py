"""The ``spinegrade`` command.

Exit codes:
    0   success
    1   unexpected internal error (a bug: please report it with the traceback from --verbose)
    2   usage error (unknown option, missing argument)
    3   the input cannot be used (missing, corrupt, 2-D, 4-D, axial-only, NaN voxels, too large)
    4   batch: finished, but at least one study failed (see summary.csv)
    5   a model bundle is missing or fails its SHA-256 check
    130 interrupted or cancelled; nothing half-written is left behind
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from .. import __version__
from ..errors import SpineGradeError

# Each command lives in its own module with register(subparsers); the handler is set as `func`.
COMMAND_MODULES = ["run", "batch", "info", "demo", "regrade", "train", "finetune", "evaluate", "phantom", "scene"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INPUT, EXIT_BATCH_FAILURES, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinegrade",
        description="Label vertebrae, localise disc levels and grade degeneration on sagittal spine MRI.",
        epilog=__doc__.split("Exit codes:")[1].join(["Exit codes:", ""]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"spinegrade {__version__}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    noise.add_argument("-v", "--verbose", action="store_true", help="print debug detail and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("matplotlib", "PIL", "monai", "highdicom"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        return int(args.func(args) or 0)
    except SpineGradeError as e:
        if args.verbose:
            logging.exception("failed")
        print(f"spinegrade: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: one line, the traceback with --verbose
        if args.verbose:
            logging.exception("internal error")
        print(f"spinegrade: internal error: {type(e).__name__}: {e} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("spinegrade: interrupted; nothing half-written was left", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
