"""Routes of the consortium file: which destinations receive a resource."""

from __future__ import annotations

from adapter.consortium import Consortium


def routed(consortium: Consortium, facility_id: str, resource_type: str) -> list[tuple[str, int]]:
    """(destination, number of the first route that names it, 1-based) for the enabled
    destinations that receive a resource of ``resource_type`` produced at ``facility_id``,
    in route order, each once."""
    enabled = {d.id for _, d in consortium.destinations() if d.enabled}
    chosen: dict[str, int] = {}
    for number, route in enumerate(consortium.routes, start=1):
        if "*" not in route.from_ and facility_id not in route.from_:
            continue
        if "*" not in route.resource_types and resource_type not in route.resource_types:
            continue
        for d in route.to:
            if d in enabled:
                chosen.setdefault(d, number)
    return list(chosen.items())


def destinations_for(consortium: Consortium, facility_id: str, resource_type: str) -> list[str]:
    """Ids of the enabled destinations that receive a resource of ``resource_type``
    produced at ``facility_id``, in route order, each once."""
    return [d for d, _ in routed(consortium, facility_id, resource_type)]
