"""Validate a result dictionary against the packaged copy of ``result.schema.json``."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict


@lru_cache(maxsize=1)
def result_schema() -> Dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("result.schema.json").read_text())


def validate_result_dict(data: Dict[str, Any], schema: Dict[str, Any] | None = None) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` breaks the result contract."""
    import jsonschema

    jsonschema.validate(data, schema or result_schema())
