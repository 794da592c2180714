"""Metadata and model card of the body-outline model's bundle."""

from __future__ import annotations

from typing import Any, Dict

from .outline import PATCH, PATCH_MM

BUNDLE_NAME = "spinegrade_body_outline"


def outline_metadata(version: str, changelog: str, record: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": BUNDLE_NAME,
        "version": version,
        "changelog": {version: changelog},
        "task": "Redraws one vertebral body's outline on one sagittal slice, at 1 mm, from the image and the body's current mask",
        "description": "MONAI 2-D UNet on 64 x 64 mm patches at 1 mm in the sagittal plane (rows posterior, columns superior)",
        "intended_use": "Research use only; not a medical device. Refines the spinegrade_vertebrae model's body outlines.",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 2,
                                 "spatial_shape": [PATCH, PATCH], "dtype": "float32", "value_range": [-0.5, 1.5],
                                 "is_patch_data": True,
                                 "channel_def": {"0": "image, 1st-99th percentile scaled to 0-1", "1": "the body's current mask"}}},
            "outputs": {"pred": {"type": "logits", "format": "segmentation", "num_channels": 1,
                                 "spatial_shape": [PATCH, PATCH], "dtype": "float32", "value_range": [],
                                 "is_patch_data": True, "channel_def": {"0": "this vertebral body"}}},
        },
        "spinegrade": {"patch": PATCH, "patch_mm": PATCH_MM, "training": record},
    }


def outline_model_card(record: Dict[str, Any]) -> str:
    rows = "\n".join(f"| {h['step']} | {h['loss']:.4f} | {h.get('val_dice', float('nan')):.4f} |" for h in record.get("history", []))
    return f"""# {BUNDLE_NAME}

Redraws each vertebral body's outline, slice by sagittal slice, at 1 mm. The vertebra model
(`spinegrade_vertebrae`) labels the bodies on a 1.5 mm working grid with 3 mm slices; its outlines
reach a finer input grid as a staircase. This model sees a 64 x 64 mm patch at 1 mm around one body
on one slice of the input grid (the image and that body's current mask) and answers the body's mask
there. It never renames anything and never touches the sacrum, the canal or the cord.

**Not a medical device. Research use only.**

## Training data
- Real scans: {len(record.get('real_train', []))} MyoSegmenTUM spine T1 water-fat scans (Burian et al., BMC Musculoskelet
  Disord 2019;20:152), the `spinegrade_vertebrae` bundle's own training scans, of which only the L1-L5
  bodies are labelled; {len(record.get('real_validation', []))} of them used for validation (model selection) only:
  {', '.join(record.get('real_validation', []))}. The vertebra bundle's held-out scans were not used.
- Generated cases: {len(record.get('generated_seeds', []))} from SpineGrade's synthetic generator (seeds
  {record.get('generated_seed_range', '')}; lumbar, thoraco-lumbar and whole-spine fields of view; T1, T2, STIR
  and randomised contrast), {record.get('real_share', '')} of each batch drawn from the real scans.
- Inputs are the outlines that `spinegrade_vertebrae` (SHA-256 {str(record.get('vertebra_bundle_sha256', ''))[:16]}...) draws on
  these scans: the model learned to correct that model's outlines.
- {record.get('n_train_patches', 0)} training patches, {record.get('n_val_patches', 0)} validation patches.

## Command
```
{record.get('command', '')}
```

## Validation (patch Dice on the validation scans; best step {record.get('best_step')})
The vertebra model's own outlines score {record.get('val_input_dice', float('nan')):.4f} on the same patches.

| step | loss | validation Dice |
|---|---|---|
{rows}

## Limits
The only real scans it has seen are one site's 1 mm lumbar T1 water-fat scans of adults, labelled
L1-L5; thoracic and cervical bodies and every other contrast it knows from generated cases alone.
Trained with another vertebra model's outlines than the installed one, it may correct the wrong
things: retrain it with the vertebra model it serves.
"""
