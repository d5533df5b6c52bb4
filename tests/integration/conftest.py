"""Fixtures of the integration tests: the test peers (tests/peers) and the loopback FHIR
receiver of the delivery tests (``receiver``)."""

from collections.abc import Iterator

import pytest

from tests.integration.delivery_receiver import Receiver
from tests.integration.delivery_support import receiving
from tests.peers.fixtures import (  # noqa: F401  (fixtures are found by their names)
    fault_server,
    medplum,
    medplum_server,
    mllp_peer,
    tls_files,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()
