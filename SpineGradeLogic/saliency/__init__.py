"""Saliency evidence for the grades: Grad-CAM (MONAI), Integrated Gradients and SmoothGrad (captum),
occlusion (MONAI), computed on a disc crop and mapped back into the input's geometry. See ``maps.py``;
the method names and what ``auto`` means per head are in ``methods.py`` (no torch import)."""

from .methods import DEFAULT_METHOD, METHODS, concrete_methods, resolve_method

_FROM_MAPS = ("HeadLogProb", "heads_for_level", "map_to_input", "saliency_map")


def __getattr__(name):  # the maps import torch: only when they are asked for
    if name in _FROM_MAPS:
        from . import maps

        return getattr(maps, name)
    raise AttributeError(name)


__all__ = ["DEFAULT_METHOD", "METHODS", "concrete_methods", "resolve_method", *_FROM_MAPS]
