"""The store: SQLAlchemy 2.0 tables, alembic migrations and repository functions.

Every function takes a Session and never commits; the caller owns the transaction::

    with factory.begin() as session:
        saved = save_resources(session, resources, message_id=m.id, now=now)

The outbox and delivery tables belong to one repository, :mod:`adapter.store.outbox`.
"""

from adapter.fhir.search_query import Criterion

# the audit and patient index tables: imported so that Base.metadata knows them
from adapter.store import audit_log, identity_tables  # noqa: F401
from adapter.store.engine import make_engine, migrate, read_only, session_factory
from adapter.store.messages import (
    count_messages,
    create_message,
    find_message,
    get_message,
    list_messages,
    set_message_result,
    verified_raw,
)
from adapter.store.models import (
    Base,
    InboundMessage,
    Resource,
    ResourceVersion,
    SearchIndex,
)
from adapter.store.outbox import enqueue, enqueue_many
from adapter.store.resources import (
    LockedRows,
    Saved,
    content_hash,
    lock_resources,
    read_history,
    read_resource,
    read_version,
    reindex,
    resource_state,
    save_resources,
)
from adapter.store.search import search

__all__ = [
    "Base",
    "Criterion",
    "InboundMessage",
    "LockedRows",
    "Resource",
    "ResourceVersion",
    "Saved",
    "SearchIndex",
    "content_hash",
    "count_messages",
    "create_message",
    "enqueue",
    "enqueue_many",
    "find_message",
    "get_message",
    "list_messages",
    "lock_resources",
    "make_engine",
    "migrate",
    "read_history",
    "read_only",
    "read_resource",
    "read_version",
    "reindex",
    "resource_state",
    "save_resources",
    "search",
    "session_factory",
    "set_message_result",
    "verified_raw",
]
