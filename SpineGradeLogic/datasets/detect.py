"""`open_dataset`: pick the adapter from the files a dataset folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..errors import DatasetError
from . import folder, rsna, spider
from .common import Dataset

KINDS = ("spider", "rsna", "folder")

# What each kind is recognised by (all must be present).
SIGNATURES = {
    "spider": (spider.GRADINGS, "images/"),
    "rsna": (rsna.TRAIN, rsna.COORDINATES, rsna.DESCRIPTIONS),
    "folder": (folder.GRADES,),
}


def _has(root: Path, name: str) -> bool:
    return (root / name.rstrip("/")).is_dir() if name.endswith("/") else (root / name).is_file()


def detect_kind(root: Union[str, Path]) -> str:
    """``"spider"``, ``"rsna"`` or ``"folder"`` from the files under ``root``; DatasetError if none fits."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    found = [k for k, names in SIGNATURES.items() if all(_has(root, n) for n in names)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DatasetError(f"{root}: looks like several dataset kinds ({', '.join(found)}); name one with kind=")
    partial = [f"{k} (has {', '.join(n for n in names if _has(root, n))}; lacks "
               f"{', '.join(n for n in names if not _has(root, n))})"
               for k, names in SIGNATURES.items() if any(_has(root, n) for n in names)]
    raise DatasetError(
        f"{root}: not a dataset SpineGrade knows. Expected SPIDER ({', '.join(SIGNATURES['spider'])}), "
        f"RSNA 2024 ({', '.join(SIGNATURES['rsna'])}) or a SpineGrade folder ({folder.GRADES})"
        + (f"; partly found: {'; '.join(partial)}" if partial else ""))


def open_dataset(path: Union[str, Path], kind: Optional[str] = None, **options) -> Dataset:
    """Open the dataset at ``path`` (a folder, or a file inside it such as train.csv).

    Args:
        kind: "spider", "rsna" or "folder"; detected from the files present when None.
        options: passed to the adapter (SPIDER: ``series="main"|"all"``).
    """
    root = Path(path)
    if root.is_file():
        root = root.parent
    if kind is None:
        kind = detect_kind(root)
    elif kind not in KINDS:
        raise DatasetError(f"unknown dataset kind '{kind}' (known: {', '.join(KINDS)})")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    if kind == "spider":
        return spider.SpiderDataset(root, **options)
    if kind == "rsna":
        return rsna.RsnaDataset(root, **options)
    return folder.FolderDataset(root, **options)
