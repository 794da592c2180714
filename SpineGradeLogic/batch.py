"""Run the pipeline on every study below a folder: one result folder each plus ``summary.csv``.

A study is a volume file (NIfTI, NRRD, MHA/MHD) or the DICOM files sharing one
StudyInstanceUID. A volume file named like its study's with ``_axial`` added (``case01_axial.nii.gz``
beside ``case01.nii.gz``) is that study's axial T2 series, not a study of its own (DICOM studies
find their axial series themselves). A bad study is recorded with its error and the batch goes on;
a rerun skips studies whose result folder is complete; ``jobs > 1`` runs studies in parallel processes.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pydicom

from .errors import InputError, SpineGradeError
from .io.dicom_series import dicom_files
from .io.study import is_volume_file
from .pipeline import RunOptions, run_study
from .results.folder import is_result_folder, read_result_folder

SUMMARY_CSV = "summary.csv"
AXIAL_SUFFIX = "_axial"  # case01_axial.nii.gz is the axial T2 of case01.nii.gz
SUMMARY_COLUMNS = ["study", "status", "error", "input", "result", "vertebrae", "discs", "warnings", "seconds"]


@dataclass
class StudyItem:
    study_id: str  # unique, safe as a folder name
    source: object  # a path, or a list of DICOM file paths
    description: str
    axial: Optional[Path] = None  # the study's axial T2 file, where one lies beside it


@dataclass
class BatchRow:
    study: str
    status: str  # "ok", "error", "skipped (done earlier)"
    error: str = ""
    input: str = ""
    result: str = ""
    vertebrae: int = 0
    discs: int = 0
    warnings: int = 0
    seconds: float = 0.0


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_studies(root: Path) -> List[StudyItem]:
    """Every study below ``root``, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    items: List[StudyItem] = []
    volumes = [p for p in sorted(root.rglob("*")) if p.is_file() and is_volume_file(p) and p.suffix.lower() != ".raw"]
    stems = {(f.parent, _strip_suffix(f.name).lower()): f for f in volumes}
    axial_of = {}
    for f in volumes:
        stem = _strip_suffix(f.name)
        if stem.lower().endswith(AXIAL_SUFFIX):
            study = stems.get((f.parent, stem[: -len(AXIAL_SUFFIX)].lower()))
            if study is not None:  # an axial file without its sagittal stays a study, and says what it is
                axial_of[study] = f
    paired = set(axial_of.values())
    for f in volumes:
        if f in paired:
            continue
        rel = f.relative_to(root)
        ax = axial_of.get(f)
        desc = f"{rel} (axial: {ax.name})" if ax is not None else str(rel)
        items.append(StudyItem(_safe_id(_strip_suffix(str(rel))), f, desc, ax))
    by_study: Dict[str, List[Path]] = {}
    for f in dicom_files([root]):
        try:
            uid = str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
        except Exception:  # an unreadable file becomes its own failing study, named by its folder
            uid = f"unreadable:{f.parent}"
        by_study.setdefault(uid, []).append(f)
    for uid, files in sorted(by_study.items(), key=lambda kv: str(kv[1][0])):
        common = Path(os.path.commonpath([str(p.parent) for p in files]))
        rel = str(common.relative_to(root)) if common != root else uid
        items.append(StudyItem(_safe_id(rel), sorted(files), f"{rel} (DICOM, {len(files)} files)"))
    ids = [i.study_id for i in items]
    for item in items:  # two studies under one folder name: disambiguate
        if ids.count(item.study_id) > 1:
            # a digest, not hash(): ids must stay the same across runs for resume to work
            item.study_id = f"{item.study_id}_{hashlib.sha1(item.description.encode()).hexdigest()[:8]}"
    return items


def _run_one(item: StudyItem, out_root: Path, options: RunOptions, torch_threads: int) -> BatchRow:
    """One study in a worker; any failure becomes an error row, never an exception."""
    try:
        import torch

        torch.set_num_threads(max(1, torch_threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    t0 = time.perf_counter()
    out = out_root / item.study_id
    row = BatchRow(item.study_id, "ok", input=item.description, result=str(out))
    if item.axial is not None and options.use_axial and options.axial is None:
        options = replace(options, axial=item.axial)
    try:
        result = run_study(item.source, out, options)
        row.vertebrae, row.discs, row.warnings = len(result.vertebrae), len(result.discs), len(result.warnings)
    except SpineGradeError as e:
        row.status, row.error, row.result = "error", str(e), ""
    except Exception as e:  # keep the batch going; the row says what broke
        row.status, row.error, row.result = "error", f"internal error: {type(e).__name__}: {e}", ""
    row.seconds = round(time.perf_counter() - t0, 2)
    return row


def run_batch(
    root: Path,
    out_root: Path,
    options: Optional[RunOptions] = None,
    jobs: int = 1,
    force: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> List[BatchRow]:
    """Run every study below ``root`` into ``out_root/<study>`` and write ``out_root/summary.csv``."""
    options = options or RunOptions()
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    items = find_studies(root)
    if not items:
        raise InputError(f"{root}: no studies found (no NIfTI, NRRD, MHA or DICOM files below it)")
    rows: Dict[str, BatchRow] = {}
    todo: List[StudyItem] = []
    for item in items:
        done = out_root / item.study_id
        if not force and is_result_folder(done):
            r = read_result_folder(done).result
            rows[item.study_id] = BatchRow(item.study_id, "skipped (done earlier)", input=item.description,
                                           result=str(done), vertebrae=len(r.vertebrae), discs=len(r.discs),
                                           warnings=len(r.warnings))
        else:
            todo.append(item)
    finished = len(rows)
    if progress:
        progress(finished, len(items), "starting")
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        for item in todo:
            rows[item.study_id] = _run_one(item, out_root, options, threads)
            finished += 1
            if progress:
                progress(finished, len(items), f"{item.study_id}: {rows[item.study_id].status}")
    else:
        # spawn, not fork: torch's thread pools do not survive a fork safely
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, item, out_root, options, threads): item for item in todo}
            for fut in as_completed(futures):
                item = futures[fut]
                rows[item.study_id] = fut.result()
                finished += 1
                if progress:
                    progress(finished, len(items), f"{item.study_id}: {rows[item.study_id].status}")
    ordered = [rows[i.study_id] for i in items]
    write_summary(ordered, out_root / SUMMARY_CSV)
    return ordered


def write_summary(rows: Sequence[BatchRow], path: Path) -> None:
    """Write the summary CSV through a temporary file, so a reader never sees half of it."""
    fd, tmp = tempfile.mkstemp(prefix=".summary-", suffix=".csv", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r))
    os.replace(tmp, path)
