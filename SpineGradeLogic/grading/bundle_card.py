"""Metadata and model card of the grading model's bundle (``spinegrade_grading``)."""

from __future__ import annotations

from typing import Any, Dict

from ..names import HEAD_NAMES, HEADS
from .heads import ORDINAL_HEADS, OUTPUT_SLICES
from .data import INPUT_CHANNELS
from .decision import held_out_counts
from .network import CROP_SHAPE, GRADCAM_LAYER, NETWORK_KWARGS

CHANNEL_DEF = {
    "sagittal": "sagittal crop in the disc frame (L, P, S at 2/1/1 mm), / its 99th percentile",
    "axial_t2": "the study's axial T2 resampled onto the same grid, / its 99th percentile; 0 where it has none",
    "axial_t2_present": "1 where the axial T2 has a slice behind the voxel, else 0",
}

BUNDLE_NAME = "spinegrade_grading"


def grading_metadata(version: str, changelog: str, temperatures: Dict[str, float], record: Dict[str, Any]) -> Dict[str, Any]:
    channels = INPUT_CHANNELS[:int(record.get("network_kwargs", NETWORK_KWARGS)["in_channels"])]
    return {
        "name": BUNDLE_NAME,
        "version": version,
        # a fine-tuned bundle keeps the history of the one it started from
        "changelog": {**((record.get("init") or {}).get("changelog") or {}), version: changelog},
        "task": "Per disc level grading of degenerative changes (13 heads) with calibrated class probabilities",
        "description": "Multi-task 3-D residual CNN (MONAI Convolution / ResidualUnit blocks) on a disc-centred crop",
        "intended_use": "Research use only; not a medical device. " + training_data_line(record),
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": len(channels),
                                 "spatial_shape": list(CROP_SHAPE), "dtype": "float32", "value_range": [0, 1.5],
                                 "is_patch_data": True,
                                 "channel_def": {str(i): CHANNEL_DEF[c] for i, c in enumerate(channels)}}},
            "outputs": {"pred": {"type": "logits", "format": "per head: cumulative logits (ordinal) or logits (nominal)",
                                 "num_channels": sum(s.stop - s.start for s in OUTPUT_SLICES.values()),
                                 "spatial_shape": [], "dtype": "float32", "value_range": [], "is_patch_data": False,
                                 "channel_def": {f"{s.start}-{s.stop - 1}": h for h, s in OUTPUT_SLICES.items()}}},
        },
        "spinegrade": {
            "heads": {h: list(HEADS[h]) for h in HEAD_NAMES},
            "ordinal_heads": list(ORDINAL_HEADS),
            "temperatures": dict(temperatures),
            # the held-out crops per grade: the priors of the sensitivity operating point (grading/decision.py)
            "grade_counts": held_out_counts({"training": record}),
            "gradcam_layer": GRADCAM_LAYER,
            "input_channels": list(channels),
            "crop": {"shape": list(CROP_SHAPE), "spacing_mm": [2.0, 1.0, 1.0], "normalisation": "99th percentile inside the field of view"},
            "training": record,
        },
    }


def training_data_line(record: Dict[str, Any]) -> str:
    """One sentence on what the weights have seen (metadata's intended_use; the card's first section)."""
    ds = record.get("dataset")
    init = record.get("init")
    if ds is None and init is None:
        return "Trained on synthetic spine MRI only."
    parts = []
    if init:
        parts.append(f"Started from {init.get('name', 'a bundle')} {init.get('version', '')}".rstrip())
    if ds:
        parts.append(f"trained on {ds.get('studies', '?')} studies of the {ds.get('kind', '?')} dataset at {ds.get('path', '?')}"
                     + (f" plus {ds['generated_training_crops']} generated crops" if ds.get("generated_training_crops") else ""))
    else:
        parts.append("trained further on generated (synthetic) crops only")
    return "; ".join(parts) + "."


def _dataset_section(record: Dict[str, Any]) -> str:
    ds, init = record.get("dataset"), record.get("init")
    if ds is None and init is None:
        return ""
    lines = ["## Fine-tuning" if ds else "## Trained further", training_data_line(record), ""]
    if init:
        lines.append(f"- starting weights: {init.get('name')} {init.get('version')} (SHA-256 {str(init.get('sha256', '?'))[:16]}...)")
    if ds:
        split = ds.get("split", {})
        lines += [f"- dataset: {ds.get('kind')} at `{ds.get('path')}`, {ds.get('studies')} studies; heads it grades: "
                  f"{', '.join(ds.get('heads', [])) or 'none'}",
                  f"- levels placed by: {ds.get('levels_placed_by')} (locate mode `{ds.get('locate')}`)",
                  f"- {ds.get('training_crops')} training and {ds.get('held_out_crops')} held-out crops; held-out patients "
                  f"({split.get('source', '?')}): {', '.join(map(str, split.get('held_out_patients', [])))}"]
        kept = record.get("temperatures_kept_from_init") or []
        if kept:
            lines.append(f"- heads without held-out labels keep the starting bundle's temperatures: {', '.join(kept)}")
        lines += ["", "Heads the dataset does not grade were not trained on it: they change only through the shared "
                      "layers, and their calibration is the starting bundle's. The figures below are on the dataset's "
                      "held-out patients (exact labels only; partial labels such as Normal/Mild count in the set "
                      "likelihood and the RSNA score)."]
    return "\n".join(lines) + "\n\n"


def _axial_line(record: Dict[str, Any]) -> str:
    if int(record.get("network_kwargs", NETWORK_KWARGS)["in_channels"]) == 1:
        return "Axial series are not used (sagittal crop only)."
    n = (record.get("training") or {}).get("crops_with_axial")
    return ("Reads the study's axial T2 where there is one (resampled onto the disc crop; "
            f"{n if n is not None else 'some'} training crops had one, a quarter of them hidden at random so "
            "the model also grades without); the generator's axial stack is a small-field T2 of its own "
            "schematic anatomy, so what the axial channel adds on real axials is unmeasured.")


def _measures_line(record: Dict[str, Any]) -> str:
    n = (record.get("training") or {}).get("crops_with_measurements")
    if not n:
        return ""
    weight = (record.get("config") or {}).get("measure_weight")
    return (f"- Auxiliary target on {n} of the training crops: the generator's measurements behind the grades "
            f"(docs/grading.md, \"Measurement target\"; loss weight {weight}); the layer that predicts them is "
            "not part of this bundle.\n")


def _rarest_grades_line(record: Dict[str, Any]) -> str:
    """Each head's least-seen grade and its training crops: a grade seen a handful of times is one the
    model has hardly learnt (the generator's draw before 0.8.0 made few severe grades)."""
    counts = (record.get("training") or {}).get("class_counts") or {}
    cells = []
    for h, c in counts.items():
        if h in HEADS and len(c) == len(HEADS[h]) and sum(c):
            i = min(range(len(c)), key=lambda k: c[k])
            cells.append(f"{h} {HEADS[h][i]}: {c[i]}")
    return f"- Training crops of each head's rarest grade: {', '.join(cells)}.\n" if cells else ""


def _recalibration_line(record: Dict[str, Any]) -> str:
    r = record.get("recalibration")
    if not r:
        return ""
    return (f"- Temperatures refitted afterwards on {r.get('crops')} held-out crops from {r.get('cases')} cases "
            f"(weights unchanged; the held-out table below is on those crops):\n  `{r.get('command')}`\n")


def _table(metrics: Dict[str, Dict[str, float]]) -> str:
    rows = ["| head | balanced accuracy | QWK | ECE | n |", "|---|---|---|---|---|"]
    for h, m in metrics.items():
        rows.append(f"| {h} | {m['balanced_accuracy']:.3f} | {m['qwk']:.3f} | {m['ece']:.3f} | {m['n']} |")
    return "\n".join(rows)


SYNTHETIC_ONLY = """## Trained on synthetic data only
Every training crop comes from SpineGrade's synthetic spine MRI generator (domain-randomised contrast
on half the cases, T1/T2/STIR on the rest), with pathology prevalences raised above the generator's
defaults. The grades are the generator's own measurements cut at fixed thresholds (docs/phantom.md).
What this means for real use: the network has never seen a real scan; it knows only the generator's
anatomy, its lesion shapes and its artefacts. Its probabilities are calibrated on generated cases,
not on any real population; real-world accuracy and calibration are unknown until it is measured on
real, expert-graded scans (`spinegrade evaluate grading` or fine-tuning on SPIDER / RSNA 2024).
"""

FINE_TUNED = """## The starting model
The starting bundle was trained on SpineGrade's synthetic spine MRI generator only (its own model card
says how). Whatever these weights know of real anatomy and real readers comes from the dataset above;
their accuracy on other scanners, populations and readers is unknown until measured there.
"""


def grading_model_card(record: Dict[str, Any]) -> str:
    held = record.get("held_out", {}).get("calibrated", {})
    heads = held.get("heads", {})
    rsna = held.get("rsna", {})
    ds = record.get("dataset")
    tuned = bool(ds)  # trained on a dataset; a bundle trained further on generated crops is still synthetic-only
    training = record.get("training", {})
    what = "dataset and generated" if ds and ds.get("generated_training_crops") else "dataset" if ds else "generated"
    held_what = ("crops of held-out patients of the dataset" if ds
                 else "crops (generator defaults, seeds never trained on)")
    return f"""# {BUNDLE_NAME}

Grades every disc level for Pfirrmann 1-5, narrowing 0-3, bulging, herniation, spondylolisthesis,
upper and lower endplate defects, Modic 0-3, central canal, foraminal and lateral recess stenosis
(left/right, 0-3), with a calibrated probability for every class.

**Not a medical device. Research use only.**

{_dataset_section(record)}{FINE_TUNED if tuned else SYNTHETIC_ONLY}
## Training
- {training.get('crops', '?')} {what} crops from {training.get('cases', '?')} cases (patients);
  best epoch {record.get('best_epoch')} of {record.get('epochs_run')}.
- Held out: {(record.get('held_out_in_training') or record.get('held_out', {})).get('crops', '?')} {held_what},
  used for early stopping and to fit one temperature per head.
{_rarest_grades_line(record)}{_measures_line(record)}{_recalibration_line(record)}
```
{(record['prepare_command'] + chr(10)) if record.get('prepare_command') else ''}{record.get('command', '')}
```

## Held-out {'dataset' if ds else 'generated'} crops, calibrated
{_table(heads) if heads else '(not measured)'}

RSNA 2024 weighted log loss (central canal, foraminal, subarticular = lateral recess, any severe): {rsna.get('score', float('nan')):.3f}

## Limits
{_axial_line(record)} Levels whose crop lies more than 30 % outside the
field of view are not graded. Performance on real scans, other anatomy (children, implants,
severe deformity) and cervical or thoracic levels has not been measured.
"""
