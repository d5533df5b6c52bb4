"""FHIR XML (application/fhir+xml) from FHIR JSON: the fhir.resources models' serialiser.

The models know each type's element order, which elements are primitives (``value``
attributes, their ``_name`` extensions), where a nested resource goes and how the
narrative ``div`` is kept as XHTML; the adapter does not re-describe FHIR's structure. They
are the R4B models (the R4 ones are not maintained in fhir.resources 8): for the types
the adapter serves, R4 and R4B elements are the same. Rendering costs far more than JSON
(docs/decisions/0021-fhir-xml.md): XML is served when asked for, JSON stays the default.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class

FHIR_XML = "application/fhir+xml"
FHIR_NS = "http://hl7.org/fhir"


class XmlRenderError(ValueError):
    """The resource could not be expressed in FHIR XML by the models."""


def to_xml(resource: dict[str, Any], *, pretty: bool = False) -> bytes:
    """One resource (a Bundle, an OperationOutcome ...) as a FHIR XML document, UTF-8."""
    try:
        model = get_fhir_model_class(str(resource.get("resourceType")))
        text = model.model_validate(resource).model_dump_xml(pretty_print=pretty)
    except Exception as exc:  # pydantic errors and unknown types alike
        raise XmlRenderError(_first_line(exc)) from None
    return text.encode("utf-8") if isinstance(text, str) else text


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
