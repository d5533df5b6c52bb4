"""FHIR knowledge as data: search parameters, index values, search parsing, capability."""
