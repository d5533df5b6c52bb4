"""Outbound transports: the destinations the delivery worker sends through (FHIR REST,
MLLP sender, file-drop destination). Outbound never depends on inbound drivers, the
pipeline or the delivery worker.
"""
