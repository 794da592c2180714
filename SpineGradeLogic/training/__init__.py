"""Training shared by every SpineGrade model: the loop, checkpoints, resume and early stopping."""

from .loop import FitResult, fit

__all__ = ["fit", "FitResult"]
