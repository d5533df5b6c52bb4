"""The (resource type, parameter, kind) of ``search_index`` as a small integer (decision
0071).

A lab feed's index rows come from about fifty (type, parameter row name, kind) triples;
``search_index.param_id`` names one row of ``search_param`` instead of repeating the type
and parameter names in every row and every index entry. The rows are created and cached as
adapter/store/interning.py describes (as ``search_system``'s). Searches never use the
cache: they compare ``param_id`` with a subquery of ``search_param``
(adapter/store/index_params.py), so an unknown parameter matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from adapter.store.interning import Interned
from adapter.store.models import KINDS, SearchParam

Triple = tuple[str, str, str]  # (resource type, row name, kind name)

_PARAMS: Interned[Triple] = Interned(
    SearchParam.__table__,
    "param_id",
    ("resource_type", "param", "kind"),
    lambda triple: (triple[0], triple[1], KINDS[triple[2]]),
)


def param_ids(session: Session, triples: Iterable[Triple]) -> dict[Triple, int]:
    """The id of each (type, row name, kind), created where the store has none yet."""
    return _PARAMS.ids(session, triples)
