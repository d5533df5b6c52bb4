"""Routing: who receives what. The consortium file declares facilities, destinations,
routes and care settings as data (adapter.consortium); deciding which destinations a
resource goes to, and why, is here (pure decisions: no database).

    routes.py   destinations_for / routed: the static routes (producing facility, type)
    care.py     care_facts: the care relationships a message shows;
                recipients: static routes plus, routing by care, every facility caring
                for the resource's person, each with its reason (docs/routing.md)

The care rows themselves are kept by adapter.store.care; the pipeline's note_care and
route steps bring both together.
"""

from adapter.routing.care import (
    CareFact,
    Recipient,
    care_facts,
    describe,
    recipients,
    routes_by_care,
)
from adapter.routing.routes import destinations_for, routed

__all__ = [
    "CareFact",
    "Recipient",
    "care_facts",
    "describe",
    "destinations_for",
    "recipients",
    "routed",
    "routes_by_care",
]
