"""``python -m SpineGradeLogic.datasets PATH [--kind K] [--check]``: summarise (and check) a dataset.

Exit 0 when it reads cleanly, 3 with one line naming the file and row otherwise. ``--check``
also reads every study's labels (SPIDER masks, RSNA coordinate headers), not the images.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..errors import DatasetError
from .detect import KINDS, open_dataset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineGradeLogic.datasets", description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--check", action="store_true", help="read every study's labels too")
    a = p.parse_args(argv)
    try:
        ds = open_dataset(a.path, a.kind)
        print(f"{ds.kind} dataset at {ds.root}: {len(ds)} studies; heads: {', '.join(ds.heads())}")
        if a.check:
            levels, centred, graded = 0, 0, Counter()
            for study in ds:
                for lv in study.levels.values():
                    levels += 1
                    centred += lv.center_ras is not None
                    graded.update(list(lv.grades))
            print(f"{levels} levels, {centred} with a centre; graded: "
                  + ", ".join(f"{h} {n}" for h, n in graded.items()))
        for w in ds.warnings:
            print(f"warning: {w}")
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
