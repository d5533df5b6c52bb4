"""Routes of the consortium file: which destinations receive a resource."""

from __future__ import annotations

from adapter.consortium import Consortium


def destinations_for(consortium: Consortium, facility_id: str, resource_type: str) -> list[str]:
    """Ids of the enabled destinations that receive a resource of ``resource_type``
    produced at ``facility_id``, in route order, each once."""
    enabled = {d.id for _, d in consortium.destinations() if d.enabled}
    chosen: list[str] = []
    for route in consortium.routes:
        if "*" not in route.from_ and facility_id not in route.from_:
            continue
        if "*" not in route.resource_types and resource_type not in route.resource_types:
            continue
        chosen.extend(d for d in route.to if d in enabled and d not in chosen)
    return chosen
