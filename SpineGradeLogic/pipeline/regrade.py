"""Re-grade a result after the user corrected vertebra names.

The vertebra network's names are sometimes off (a missed L6 or T13, a field of view without C2 or
the sacrum). :func:`regrade` takes a result folder and the user's corrections, renames the
vertebrae everywhere (``result.json`` and the label values of ``segmentation.nii.gz``), places the
disc levels again (which levels exist depends on which vertebrae are adjacent: calling the lowest
lumbar vertebra L6 adds L5/L6), grades them and makes their saliency maps again on the input image,
and writes the result folder atomically (by default over the old one).

Corrections are either a mapping ``{current name: new name}`` (names not in it stay as they are;
all renames apply at once, so ``{"L4": "L5", "L5": "L4"}`` swaps) or the full list of new names,
superior first, one per vertebra. They are checked before anything is loaded or written:
unknown current names, unknown new names, two vertebrae with one name, or names that are not in
cranio-caudal order raise :class:`~SpineGradeLogic.errors.InputError` and leave the folder untouched.

The vertebra network is not run again: the bodies, posterior elements, canal and cord of the old
segmentation are kept voxel for voxel, only their label values change. Disc voxels keep their
place and take the value of their (renamed) upper vertebra; disc voxels below a vertebra that has
no adjacent vertebra under it any more are cleared, as the vertebra stage paints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from ..names import DISC_OFFSET, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, SPINE_ORDER, VERTEBRA_LABELS, spine_index
from .context import ProgressCallback, RunOptions, StudyContext, log
from .runner import run_study
from .stages import Stage, WriteStage

Corrections = Union[Mapping[str, str], Sequence[str]]

#: Warnings of the stages that a re-grade runs again (the old ones no longer hold).
_RERUN_WARNINGS = ("no disc placed between", "disc localisation", "disc grading", "saliency maps",
                   "fewer than two named vertebrae", "grades were not re-run")


def correction_mapping(names: Sequence[str], corrections: Corrections) -> Dict[str, str]:
    """Every current name -> its corrected name, checked.

    Args:
        names: the result's vertebra names, superior first.
        corrections: ``{current: new}`` (others unchanged) or the full list of new names, superior first.

    Raises:
        InputError: naming the problem (nothing given, unknown current or new name, a list of the wrong
            length, one name for two vertebrae, names out of cranio-caudal order).
    """
    names = list(names)
    if not names:
        raise InputError("this result has no named vertebrae: there is nothing to correct")
    if isinstance(corrections, Mapping):
        if not corrections:
            raise InputError("no correction given (use OLD=NEW, e.g. L5=L6)")
        unknown = [old for old in corrections if old not in names]
        if unknown:
            raise InputError(f"{', '.join(map(str, unknown))}: not one of this study's vertebrae ({', '.join(names)})")
        mapping = {n: str(corrections.get(n, n)) for n in names}
    else:
        new = [str(n) for n in corrections]
        if len(new) != len(names):
            raise InputError(f"{len(new)} names given for {len(names)} vertebrae ({', '.join(names)}); "
                             "give one name per vertebra, superior first")
        mapping = dict(zip(names, new))
    bad = [n for n in dict.fromkeys(mapping.values()) if n not in SPINE_ORDER]
    if bad:
        raise InputError(f"{', '.join(repr(b) for b in bad)}: not a vertebra name "
                         "(use C1-C7, T1-T13, L1-L6 or S1 for the sacrum)")
    seen: Dict[str, str] = {}
    for old in names:
        new = mapping[old]
        if new in seen:
            raise InputError(f"{new} would name two vertebrae ({seen[new]} and {old})")
        seen[new] = old
    new_order = [mapping[n] for n in names]
    if any(spine_index(b) <= spine_index(a) for a, b in zip(new_order, new_order[1:])):
        pairs = ", ".join(f"{o}->{mapping[o]}" for o in names)
        raise InputError(f"the corrected names are not in cranio-caudal order: {' '.join(new_order)} "
                         f"(superior first; {pairs})")
    return mapping


def relabel_segmentation(array: np.ndarray, mapping: Mapping[str, str]) -> np.ndarray:
    """The label array with every vertebra renamed: body v -> v', posterior 40+v -> 40+v', disc
    100+v -> 100+v' where v' still has an adjacent vertebra below it, else 0. Canal, cord and values
    of vertebrae not in ``mapping`` are kept. All renames apply at once."""
    from ..discs.localise import adjacent_pairs

    new_names = list(mapping.values())
    has_disc_below = {new_names[i] for i, _ in adjacent_pairs(new_names)}
    lut = np.arange(max(256, int(array.max()) + 1 if array.size else 256), dtype=np.int64)
    for old, new in mapping.items():
        o, n = VERTEBRA_LABELS[old], VERTEBRA_LABELS[new]
        lut[o] = n
        lut[POSTERIOR_OFFSET + o] = POSTERIOR_OFFSET + n
        lut[DISC_OFFSET + o] = DISC_OFFSET + n if new in has_disc_below else 0
    return lut[np.asarray(array, dtype=np.int64)].astype(array.dtype)


class _Body:
    """A renamed vertebral body as the disc stage sees an instance: its voxels in RAS."""

    def __init__(self, points: np.ndarray):
        self._points = points

    def points_ras(self) -> np.ndarray:
        return self._points


class _Labelling:
    """The corrected names with their body voxels (what `DiscStage` reads of a `Labelling`)."""

    def __init__(self, names: List[str], instances: List[_Body], vertebrae):
        self.names, self.instances, self.vertebrae = names, instances, vertebrae


def corrected_findings(study_volume, segmentation, names: Sequence[str], vertebrae):
    """A :class:`~.vertebra_stage.SpineFindings` for the disc stage from a (renamed) segmentation in
    the input's geometry: body voxels per name, its disc values, and the canal centreline taken, as
    the vertebra stage takes it, on the model's working grid."""
    import SimpleITK as sitk

    from ..io.volume import Volume
    from ..vertebrae.grid import to_working_grid, working_grid_for
    from .vertebra_stage import SpineFindings, canal_centreline

    lab = np.asarray(segmentation.array)
    bodies = []
    for name in names:
        ijk = np.argwhere(lab == VERTEBRA_LABELS[name])
        if len(ijk) == 0:
            raise InputError(f"the segmentation holds no voxels of {name}'s body (label {VERTEBRA_LABELS[name]}); "
                             "the result folder does not match its result.json")
        bodies.append(_Body(segmentation.index_to_ras(ijk)))
    canal_ras = None
    canal = (lab == SPINAL_CANAL) | (lab == SPINAL_CORD)
    if canal.any():
        grid = working_grid_for(study_volume)
        on_grid = to_working_grid(segmentation.with_array(canal.astype(np.uint8)), grid, sitk.sitkNearestNeighbor) > 0
        canal_ras = canal_centreline(on_grid, Volume(on_grid.astype(np.uint8), grid.spacing, grid.origin_lps, np.eye(3)))
    labelling = _Labelling(list(names), bodies, vertebrae)
    return SpineFindings(segmentation.with_array(lab.astype(np.uint8)), labelling, lab, canal_ras)


class CorrectNamesStage(Stage):
    """Read the result folder, check and apply the corrections, load the input study again."""

    name = "load"

    def __init__(self, result_dir: Path, corrections: Corrections):
        self.result_dir = Path(result_dir)
        self.corrections = corrections

    def run(self, ctx: StudyContext) -> None:
        from ..io.study import load_study
        from ..results import read_result_folder

        try:
            rf = read_result_folder(self.result_dir)
        except FileNotFoundError as e:
            raise InputError(str(e)) from e
        except (ValueError, KeyError) as e:
            raise InputError(f"{self.result_dir}: result.json cannot be read ({e})") from e
        result = rf.result
        names = [v.label for v in result.vertebrae]
        mapping = correction_mapping(names, self.corrections)
        if not result.segmentation or not (rf.path / result.segmentation).is_file():
            raise InputError(f"{rf.path}: the result has no segmentation to rename")
        segmentation = rf.segmentation()

        path = rf.input_path()
        src = str(path) if path is not None else result.input.path
        if path is None or not path.exists():
            raise InputError(f"the input image of this result is gone: {src} (re-grading reads the image again; "
                             "run spinegrade run on it instead)")
        o = ctx.options
        ctx.source = src
        study = load_study(src, o.series_uid or result.input.series_instance_uid, o.series_description,
                           o.sequence or (result.input.sequence if result.input.sequence != "unknown" else None))
        if not study.volume.same_geometry(segmentation, tol=1e-3):
            raise InputError(f"{src}: the image no longer has the geometry of the result's segmentation "
                             "(the file was replaced?); run spinegrade run on it instead")
        ctx.study = study
        axial_source = (result.input.extra.get("axial_series") or {}).get("source")
        if o.axial is None and axial_source not in (None, "study") and Path(axial_source).exists():
            o.axial = Path(axial_source)  # the axial volume file the first run was given

        changed = [(old, new) for old, new in mapping.items() if old != new]
        for v in result.vertebrae:
            v.label = mapping[v.label]
        result.discs = []
        result.timing_s = {}
        result.warnings = [w for w in result.warnings if not any(w.startswith(p) for p in _RERUN_WARNINGS)]
        result.extra.setdefault("corrections", []).extend({"vertebra": a, "label": b} for a, b in changed)
        ctx.result = result
        ctx.warn("vertebra names corrected by the user: " + (", ".join(f"{a}->{b}" for a, b in changed) or "none changed")
                 + "; disc levels, grades and saliency maps were computed again")
        new_names = [mapping[n] for n in names]
        ctx.segmentation = segmentation.with_array(relabel_segmentation(np.asarray(segmentation.array), mapping))
        ctx.artifacts["corrections"] = mapping
        ctx.artifacts["vertebrae"] = corrected_findings(study.volume, ctx.segmentation, new_names, result.vertebrae)
        log.info("vertebra names corrected: %s", ", ".join(f"{a}->{b}" for a, b in changed) or "none changed")


def regrade_stages(result_dir: Path, corrections: Corrections) -> List[Stage]:
    from .grading_stage import grading_stages
    from .vertebra_stage import DiscStage

    return [CorrectNamesStage(result_dir, corrections), DiscStage(), *grading_stages(), WriteStage()]


def regrade(
    result_dir: Union[str, Path],
    corrections: Corrections,
    out_dir: Optional[Union[str, Path]] = None,
    options: Optional[RunOptions] = None,
    progress: Optional[ProgressCallback] = None,
    should_cancel: Optional[Callable[[], bool]] = None,
):
    """Rename the vertebrae of the result in ``result_dir``, place, grade and explain the disc levels
    again on its input image, and write the result to ``out_dir`` (default: over ``result_dir``).

    Args:
        result_dir: a result folder written by ``spinegrade run``.
        corrections: ``{current name: new name}`` or the full list of new names, superior first.
        out_dir: where to write; the folder appears complete or not at all.
        options: heads, saliency, device and bundles for grading (`RunOptions`; its series and
            sequence default to the result's).
        progress, should_cancel: as for :func:`~SpineGradeLogic.pipeline.run_study`.

    Returns:
        The new :class:`~SpineGradeLogic.results.StudyResult`.

    Raises:
        InputError: bad corrections, no such result folder, the input image gone or changed. Nothing
            is written then.
    """
    result_dir = Path(result_dir)
    out = Path(out_dir) if out_dir is not None else result_dir
    return run_study(None, out, options or RunOptions(), regrade_stages(result_dir, corrections), progress, should_cancel)


__all__ = ["regrade", "correction_mapping", "relabel_segmentation", "regrade_stages", "CorrectNamesStage"]
