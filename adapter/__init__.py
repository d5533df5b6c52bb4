"""HL7 FHIR R4 integration adapter for county medical consortia (医共体)."""

__version__ = "0.1.0"
