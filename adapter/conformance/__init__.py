"""Conformance checking of emitted FHIR resources against the R4 core and Danish profiles.

The oracle is HAPI FHIR's instance validator, run offline as one long-lived Java process
(``tools/fhir-validator``); :class:`HapiValidator` is its Python client.
"""

from adapter.conformance.validator import (
    HapiValidator,
    ValidatorError,
    ValidatorUnavailable,
    ensure_built,
    errors,
    find_java,
    format_issues,
    package_folders,
)

__all__ = [
    "HapiValidator",
    "ValidatorError",
    "ValidatorUnavailable",
    "ensure_built",
    "errors",
    "find_java",
    "format_issues",
    "package_folders",
]
