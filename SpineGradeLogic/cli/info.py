"""``spinegrade info INPUT``: what series there are and which would be used."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..io.study import load_study


def register(sub) -> None:
    p = sub.add_parser("info", help="list a study's series and say which would be used")
    p.add_argument("input", nargs="+", type=Path)
    p.add_argument("--series-uid")
    p.add_argument("--series-description")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=info_command)


def info_command(args: argparse.Namespace) -> int:
    source = args.input[0] if len(args.input) == 1 else args.input
    study = load_study(source, args.series_uid, args.series_description)
    info = study.info.to_dict()
    v = study.volume
    info["affine_ras"] = v.affine.round(6).tolist()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if study.series:
        print(f"{len(study.series)} image series:")
        for s in study.series:
            mark = "*" if s.series_instance_uid == study.info.series_instance_uid else " "
            print(f" {mark} {s.summary()}")
    print(f"would use: {info.get('series_description') or info['path']}")
    print(f"  why: {info.get('selection', '')}")
    print(f"  sequence: {info['sequence']}, plane: {info.get('plane')} (oblique by {info.get('obliquity_deg')} deg)")
    print(f"  shape: {tuple(info['shape'])}, spacing (mm): {tuple(round(s, 4) for s in info['spacing_mm'])}")
    return 0
