"""Disc localisation: a spine curve through the named vertebrae, each disc's centre, normal and
box, and standardised disc-centred crops (with the way back for saliency maps)."""

from .crop import DEFAULT_CROP, CropSampler, CropSpec, DiscCrop, crop_geometry, extract_crop, heatmap_to_input
from .curve import SpineCurve
from .localise import DiscLocation, adjacent_pairs, discs_for_labelling, locate_disc, locate_discs

__all__ = [
    "DEFAULT_CROP",
    "CropSampler",
    "CropSpec",
    "DiscCrop",
    "crop_geometry",
    "extract_crop",
    "heatmap_to_input",
    "SpineCurve",
    "DiscLocation",
    "adjacent_pairs",
    "discs_for_labelling",
    "locate_disc",
    "locate_discs",
]
