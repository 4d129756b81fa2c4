"""Access to the fhir.resources R4B model classes by resource type."""

from __future__ import annotations

import importlib
from functools import cache


@cache
def model_class(resource_type: str):
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)
