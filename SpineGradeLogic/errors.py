"""Errors that SpineGrade reports to users as one readable line."""

from __future__ import annotations


class SpineGradeError(Exception):
    """Base class: the message is shown to the user as it is."""

    exit_code = 1


class InputError(SpineGradeError):
    """The input cannot be used: missing, unreadable, corrupt, not a sagittal 3-D spine series."""

    exit_code = 3


class ModelError(SpineGradeError):
    """A model bundle is missing, malformed, or its weights fail the SHA-256 check."""

    exit_code = 5


class DatasetError(SpineGradeError):
    """A training dataset file is malformed; the message names the file and row."""

    exit_code = 3
