"""Routing: who receives what. The consortium file declares facilities, destinations and
routes as data (adapter.consortium); deciding which destinations a resource goes to is here.

    destinations_for(consortium, facility_id, resource_type) -> list[str]

Today a route matches on the producing facility and the resource type, and only enabled
destinations are chosen. This is where consortium-wide routing (by patient, by the
patient's registered facility, by referral) will be decided.
"""

from adapter.routing.routes import destinations_for

__all__ = ["destinations_for"]
