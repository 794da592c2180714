"""Metadata and model card of the vertebra model's bundle."""

from __future__ import annotations

from typing import Any, Dict

from .spec import IN_SLICES, WORK_SPACING
from .targets import LEVELS, SEMANTIC

BUNDLE_NAME = "spinegrade_vertebrae"


def vertebra_metadata(version: str, changelog: str, record: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": BUNDLE_NAME,
        "version": version,
        "changelog": {version: changelog},
        "task": "Segmentation of vertebral bodies, posterior elements, discs, sacrum, canal and cord, with a per-voxel vertebra level, on sagittal spine MRI",
        "description": "MONAI 2-D UNet on 2.5-D stacks of sagittal slices resampled to the working grid",
        "intended_use": "Research use only; not a medical device. Input: sagittal (or 3-D) T1, T2 or STIR spine MRI.",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": IN_SLICES,
                                 "spatial_shape": ["16*n", "16*n"], "dtype": "float32", "value_range": [0, 1.5],
                                 "is_patch_data": False,
                                 "channel_def": {str(i): f"sagittal slice {i - IN_SLICES // 2:+d}" for i in range(IN_SLICES)}}},
            "outputs": {"pred": {"type": "logits", "format": "segmentation + level", "num_channels": len(SEMANTIC) + len(LEVELS),
                                 "spatial_shape": ["16*n", "16*n"], "dtype": "float32", "value_range": [],
                                 "is_patch_data": False,
                                 "channel_def": {**{str(i): n for i, n in enumerate(SEMANTIC)},
                                                 **{str(len(SEMANTIC) + i): f"level {n}" for i, n in enumerate(LEVELS)}}}},
        },
        "spinegrade": {"working_spacing_mm": list(WORK_SPACING), "in_slices": IN_SLICES, "semantic": list(SEMANTIC),
                       "levels": list(LEVELS), "training": record},
    }


def vertebra_model_card(record: Dict[str, Any]) -> str:
    hist = record.get("history") or [{}]
    best = next((h for h in hist if h.get("epoch") == record.get("best_epoch")), hist[-1])
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in best.items() if k not in ("epoch",) and isinstance(v, float))
    split = record.get("split", {})
    return f"""# {BUNDLE_NAME}

Finds the spine's structures on sagittal MRI: vertebral bodies, posterior elements, discs, sacrum,
spinal canal and cord, and says for each bony voxel which vertebra it belongs to. The labelling
decoder turns this into named vertebrae; disc localisation builds on them.

**Not a medical device. Research use only.**

## Training data
- Generated cases from SpineGrade's synthetic spine MRI generator (domain-randomised contrast).
- Real scans: the MyoSegmenTUM spine T1 water-fat scans (Burian et al., BMC Musculoskelet Disord
  2019;20:152), of which only the L1-L5 vertebral bodies are labelled; {len(split.get('real_train', []))} used
  for training, {len(split.get('real_validation', []))} held out for validation only: {', '.join(split.get('real_validation', []))}.

## Command
```
{record.get('command', '')}
```

## Validation at the best epoch ({record.get('best_epoch')})
| metric | value |
|---|---|
{metrics}

## Limits
The real scans seen in training are all one site's lumbar T1 water-fat scans of adults; posterior
elements, discs, sacrum, canal and cord were learned from generated cases only. Performance on
other scanners, cervical spines, children, implants or severe deformity has not been measured.
"""
