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
from adapter.store.loaded import loaded
from adapter.store.models import InboundMessage
from adapter.store.resources import Saved

NS = "urn:yigongti-fhir-adapter"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"


def provenance_for(
    message: InboundMessage, made: list[Saved], *, mapping: str | None, recorded: Any
) -> dict[str, Any]:
    # the row's values as loaded (adapter/store/loaded.py: without the descriptors' calls)
    source, message_id = loaded(message, "source_system"), loaded(message, "id")
    facility_id = loaded(message, "facility_id")
    body: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": message_id,
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
                                "value": facility_id,
                            }
                        }
                    }
                    if facility_id
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
                    "reference": f"Binary/{message_id}",
                    "identifier": {"system": f"{NS}:sha256", "value": loaded(message, "sha256")},
                    "display": f"inbound message as received ({loaded(message, 'size')} bytes)",
                },
            }
        ],
    }
    if mapping:
        folder, _, fingerprint = mapping.partition("@")
        body["policy"] = [f"{NS}:mapping:{folder}:{fingerprint}"]
    return body
