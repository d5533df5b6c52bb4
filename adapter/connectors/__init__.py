"""What inbound drivers (adapter.inbound) and outbound transports (adapter.outbound) share:
settings models and checks (base.py), the HTTP client and its error classification
(http.py), credentials and TLS (auth.py), HL7 v2 ACKs (hl7_ack.py), MLLP frames
(mllp_framing.py), atomic file writes (files.py), and the ``adapter connectors`` commands.

Nothing here imports either side: both depend on this package, never the other way.
"""
