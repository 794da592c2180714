"""Metadata and model card of the grading model's bundle (``spinegrade_grading``)."""

from __future__ import annotations

from typing import Any, Dict

from ..names import HEAD_NAMES, HEADS
from .heads import ORDINAL_HEADS, OUTPUT_SLICES
from .network import CROP_SHAPE, GRADCAM_LAYER

BUNDLE_NAME = "spinegrade_grading"


def grading_metadata(version: str, changelog: str, temperatures: Dict[str, float], record: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": BUNDLE_NAME,
        "version": version,
        "changelog": {version: changelog},
        "task": "Per disc level grading of degenerative changes (13 heads) with calibrated class probabilities",
        "description": "Multi-task 3-D residual CNN (MONAI Convolution / ResidualUnit blocks) on a disc-centred crop",
        "intended_use": "Research use only; not a medical device. Trained on synthetic spine MRI only.",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 1,
                                 "spatial_shape": list(CROP_SHAPE), "dtype": "float32", "value_range": [0, 1.5],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "sagittal crop in the disc frame (L, P, S at 2/1/1 mm), / its 99th percentile"}}},
            "outputs": {"pred": {"type": "logits", "format": "per head: cumulative logits (ordinal) or logits (nominal)",
                                 "num_channels": sum(s.stop - s.start for s in OUTPUT_SLICES.values()),
                                 "spatial_shape": [], "dtype": "float32", "value_range": [], "is_patch_data": False,
                                 "channel_def": {f"{s.start}-{s.stop - 1}": h for h, s in OUTPUT_SLICES.items()}}},
        },
        "spinegrade": {
            "heads": {h: list(HEADS[h]) for h in HEAD_NAMES},
            "ordinal_heads": list(ORDINAL_HEADS),
            "temperatures": dict(temperatures),
            "gradcam_layer": GRADCAM_LAYER,
            "crop": {"shape": list(CROP_SHAPE), "spacing_mm": [2.0, 1.0, 1.0], "normalisation": "99th percentile inside the field of view"},
            "training": record,
        },
    }


def _table(metrics: Dict[str, Dict[str, float]]) -> str:
    rows = ["| head | balanced accuracy | QWK | ECE | n |", "|---|---|---|---|---|"]
    for h, m in metrics.items():
        rows.append(f"| {h} | {m['balanced_accuracy']:.3f} | {m['qwk']:.3f} | {m['ece']:.3f} | {m['n']} |")
    return "\n".join(rows)


def grading_model_card(record: Dict[str, Any]) -> str:
    held = record.get("held_out", {}).get("calibrated", {})
    heads = held.get("heads", {})
    rsna = held.get("rsna", {})
    return f"""# {BUNDLE_NAME}

Grades every disc level for Pfirrmann 1-5, narrowing 0-3, bulging, herniation, spondylolisthesis,
upper and lower endplate defects, Modic 0-3, central canal, foraminal and lateral recess stenosis
(left/right, 0-3), with a calibrated probability for every class.

**Not a medical device. Research use only.**

## Trained on synthetic data only
Every training crop comes from SpineGrade's synthetic spine MRI generator (domain-randomised contrast
on half the cases, T1/T2/STIR on the rest), with pathology prevalences raised above the generator's
defaults. The grades are the generator's own measurements cut at fixed thresholds (docs/phantom.md).
What this means for real use: the network has never seen a real scan; it knows only the generator's
anatomy, its lesion shapes and its artefacts. Its probabilities are calibrated on generated cases,
not on any real population; real-world accuracy and calibration are unknown until it is measured on
real, expert-graded scans (`spinegrade evaluate grading` or fine-tuning on SPIDER / RSNA 2024).

## Training
- {record.get('training', {}).get('crops', '?')} crops from {record.get('training', {}).get('cases', '?')} generated cases;
  best epoch {record.get('best_epoch')} of {record.get('epochs_run')}.
- Held out: {record.get('held_out', {}).get('crops', '?')} crops (generator defaults, seeds never trained on),
  used for early stopping and to fit one temperature per head.

```
{record.get('command', '')}
```

## Held-out generated crops, calibrated
{_table(heads) if heads else '(not measured)'}

RSNA 2024 weighted log loss (central canal, foraminal, subarticular = lateral recess, any severe): {rsna.get('score', float('nan')):.3f}

## Limits
Axial series are not used (sagittal crop only). Levels whose crop lies more than 30 % outside the
field of view are not graded. Performance on real scans, other anatomy (children, implants,
severe deformity) and cervical or thoracic levels has not been measured.
"""
