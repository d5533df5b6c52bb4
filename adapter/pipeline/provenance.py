"""Provenance of what one message made: a FHIR R4 ``Provenance`` per stored message.

target   every resource version the message created or changed (``Type/id/_history/n``)
entity   the inbound message as received: ``Binary/<message id>`` (served by the API, the
         exact bytes) with its sha256
agent    the source system (author, on behalf of its facility) and the adapter (assembler)
policy   the mapping set that translated it: folder and fingerprint of its files
recorded when it was stored

Its id is the message's, so reprocessing the message makes a new version of the same
Provenance (the earlier one stays in its history, still naming the earlier versions).
``Provenance?target=Observation/x`` finds what made every version of ``x``.
"""

from __future__ import annotations

from typing import Any

from adapter import __version__
from adapter.fhir.dates import format_instant
from adapter.store.models import InboundMessage
from adapter.store.resources import Saved

NS = "urn:yigongti-fhir-adapter"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"


def provenance_for(
    message: InboundMessage, made: list[Saved], *, mapping: str | None, recorded: Any
) -> dict[str, Any]:
    source = message.source_system
    body: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": message.id,
        "target": [
            {"reference": f"{s.resource_type}/{s.id}/_history/{s.version_id}"} for s in made
        ],
        "recorded": format_instant(recorded),
        "activity": {"coding": [{"system": LIFECYCLE, "code": "transform"}]},
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT, "code": "author"}]},
                "who": {"identifier": {"system": f"{NS}:source-system", "value": source}},
                **(
                    {
                        "onBehalfOf": {
                            "identifier": {
                                "system": f"{NS}:facility",
                                "value": message.facility_id,
                            }
                        }
                    }
                    if message.facility_id
                    else {}
                ),
            },
            {
                "type": {"coding": [{"system": PARTICIPANT, "code": "assembler"}]},
                "who": {"display": f"yigongti-fhir-adapter {__version__}"},
            },
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "reference": f"Binary/{message.id}",
                    "identifier": {"system": f"{NS}:sha256", "value": message.sha256},
                    "display": f"inbound message as received ({message.size} bytes)",
                },
            }
        ],
    }
    if mapping:
        folder, _, fingerprint = mapping.partition("@")
        body["policy"] = [f"{NS}:mapping:{folder}:{fingerprint}"]
    return body
