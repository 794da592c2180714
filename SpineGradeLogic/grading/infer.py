"""Grading at inference: a bundle's network + its temperatures applied to disc crops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import ModelError
from ..models.bundle import LoadedModel, load_bundle
from ..names import HEAD_NAMES
from ..results.model import Grade
from .calibration import check_temperatures
from .data import normalise_crop
from .heads import probabilities
from .network import CROP_SHAPE, GRADCAM_LAYER


@dataclass
class Grader:
    """A loaded grading model with its per-head temperatures."""

    model: LoadedModel
    temperatures: Dict[str, float]

    @classmethod
    def load(cls, path: Union[str, Path], device: str = "cpu") -> "Grader":
        model = load_bundle(path, device)
        sg = model.metadata.get("spinegrade", {})
        try:
            temps = check_temperatures(sg.get("temperatures", {}))
        except ValueError as e:
            raise ModelError(f"model bundle {path}: {e}") from e
        return cls(model, temps)

    @property
    def network(self) -> torch.nn.Module:
        return self.model.network

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def gradcam_layer(self) -> str:
        return str(self.model.metadata.get("spinegrade", {}).get("gradcam_layer", GRADCAM_LAYER))

    def input_tensor(self, crops: Sequence) -> torch.Tensor:
        """``[n, 1, 24, 80, 64]`` normalised inputs of :class:`DiscCrop` objects."""
        arrays = []
        for c in crops:
            a = np.asarray(c.image.array, np.float32)
            if a.shape != CROP_SHAPE:
                raise ValueError(f"crop of {c.level} has shape {a.shape}, the model needs {CROP_SHAPE}")
            arrays.append(normalise_crop(a, getattr(c, "inside", None)))
        return torch.as_tensor(np.stack(arrays))[:, None].to(self.device)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, heads: Optional[Sequence[str]] = None) -> List[Dict[str, np.ndarray]]:
        """Calibrated probabilities per crop: a list of head -> ``[K]``."""
        self.network.eval()
        probs = probabilities(self.network(x), self.temperatures, heads or HEAD_NAMES)
        return [{h: p[i] for h, p in probs.items()} for i in range(x.shape[0])]

    def grade(self, crops: Sequence, heads: Optional[Sequence[str]] = None) -> List[Dict[str, Grade]]:
        """head -> :class:`Grade` per crop."""
        if not crops:
            return []
        out = self.predict(self.input_tensor(crops), heads)
        return [{h: Grade.from_probabilities(h, p) for h, p in d.items()} for d in out]
