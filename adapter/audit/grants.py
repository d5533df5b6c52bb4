"""PostgreSQL grants that keep the audit log append-only for the running service.

The tables are owned by a migration role (the owner of a table can always change it); the
service connects as another role that may INSERT and SELECT the audit tables and nothing
more, and change the other tables as it needs. Purging archived records needs a third
role (the audit administrator's). ``adapter audit grants`` prints these statements;
docs/audit.md explains them.
"""

from __future__ import annotations

from adapter.store.models import Base

# audit_link is SQLite's alone since migration 0048 (PostgreSQL keeps audit_record.links)
AUDIT_TABLES = ("audit_record", "audit_checkpoint")


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"{name!r} is not a plain role or schema name")
    return f'"{name}"'


def service_grants(role: str, schema: str = "public") -> list[str]:
    """What the service's database user needs: every adapter table, but only INSERT and
    SELECT on the audit tables (no UPDATE, DELETE or TRUNCATE)."""
    who, where = _quoted(role), _quoted(schema)
    other = sorted(
        name
        for name, table in Base.metadata.tables.items()
        if name not in AUDIT_TABLES and table.info.get("dialect") in (None, "postgresql")
    )
    audit = ", ".join(f"{where}.{t}" for t in AUDIT_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"REVOKE ALL ON {audit} FROM PUBLIC",
        f"REVOKE ALL ON {audit} FROM {who}",
        f"GRANT SELECT, INSERT ON {audit} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON "
        f"{', '.join(f'{where}.{t}' for t in other)} TO {who}",
        f"GRANT SELECT ON {where}.alembic_version TO {who}",  # migrations run as the owner
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
    ]


def audit_admin_grants(role: str, schema: str = "public") -> list[str]:
    """The audit administrator's user: reads the log, removes only what ``adapter audit
    purge`` removes (archived and verified records), changes nothing else."""
    who, where = _quoted(role), _quoted(schema)
    audit = ", ".join(f"{where}.{t}" for t in AUDIT_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"GRANT SELECT, INSERT, DELETE ON {audit} TO {who}",
    ]
