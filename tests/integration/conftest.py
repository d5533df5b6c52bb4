"""Fixtures of the integration tests: the test peers (tests/peers)."""

from tests.peers.fixtures import (  # noqa: F401  (fixtures are found by their names)
    fault_server,
    medplum,
    medplum_server,
    mllp_peer,
    tls_files,
)
