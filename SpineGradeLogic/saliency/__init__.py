"""Saliency evidence for the grades: Grad-CAM (MONAI), Integrated Gradients (captum), occlusion
(MONAI), computed on a disc crop and mapped back into the input's geometry. See ``maps.py``."""

from .maps import METHODS, HeadLogProb, heads_for_level, map_to_input, saliency_map

__all__ = ["METHODS", "HeadLogProb", "heads_for_level", "map_to_input", "saliency_map"]
