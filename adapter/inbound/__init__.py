"""Inbound drivers: what brings documents to the pipeline (MLLP listener, file-drop source,
FHIR-pull source, the poller that runs polled sources). Inbound depends on the pipeline;
never on outbound transports or the delivery worker.
"""
