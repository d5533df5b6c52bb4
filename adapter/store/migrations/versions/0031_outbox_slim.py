"""A smaller outbox row (decision 0079).

* SQLite: the row's six instants (``next_attempt_at``, ``created_at``, ``claimed_until``,
  ``first_attempt_at``, ``last_attempt_at``, ``delivered_at``) hold the integer
  microseconds since 1970 instead of 26 characters of text (``types.UTCMicros``, as
  ``audit_record.recorded`` since 0029): 8 bytes or fewer in the row and in the (state,
  next_attempt_at) index. PostgreSQL's ``timestamptz`` is 8 bytes already.
* ``outbox.destination`` (the name, in every row and two indexes) becomes
  ``destination_id``, a row of the new ``outbox_destination`` table (each name once).
* ``outbox.state`` is a small integer (pending 1, in-flight 2, delivered 3, dead 4; CHECK),
  read and written as the names by its column type.

SQLite: the outbox table is copied once into its new form (a column's type and a CHECK
cannot change in place). Its ``DROP TABLE`` does not cascade to the ``delivery_attempt``
rows: migrations run with SQLite's foreign keys off (``engine.migration_connection``).
PostgreSQL: the columns are changed in place (one rewrite of the table).

Downgrade: the names and SQLite's text instants back, ``outbox_destination`` dropped.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANTS = (
    "next_attempt_at",
    "created_at",
    "claimed_until",
    "first_attempt_at",
    "last_attempt_at",
    "delivered_at",
)
STATES = {"pending": 1, "in-flight": 2, "delivered": 3, "dead": 4}
_CHECK = "ck_outbox_state"
_SEQUENCE = "uq_outbox_destination_sequence"
_NUMBERED = sa.text("sequence IS NOT NULL")
_OLD_QUEUE = "ix_outbox_destination_state_order_key"
_NEW_QUEUE = "ix_outbox_destination_id_state_order_key"
_DUE = "ix_outbox_state_next_attempt_at"
_MESSAGE = "ix_outbox_message_id"


def _micros(column: str) -> str:
    # SQLAlchemy's SQLite text of a UTC instant: "2026-12-05 08:00:00.123456" (the fraction
    # always has six digits; appended zeros make a missing one read as .000000)
    return (
        f"CASE WHEN typeof({column}) = 'text' THEN"
        f" CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({column} || '.000000', 21, 6) AS INTEGER) ELSE {column} END"
    )


def _text(column: str) -> str:
    return (
        f"CASE WHEN typeof({column}) = 'integer' THEN"
        f" strftime('%Y-%m-%d %H:%M:%S', {column} / 1000000, 'unixepoch')"
        f" || printf('.%06d', {column} % 1000000) ELSE {column} END"
    )


def _state_code(column: str = "state") -> str:
    cases = " ".join(f"WHEN '{name}' THEN {code}" for name, code in STATES.items())
    return f"CASE {column} {cases} END"


def _state_name(column: str = "state") -> str:
    cases = " ".join(f"WHEN {code} THEN '{name}'" for name, code in STATES.items())
    return f"CASE {column} {cases} END"


def _columns(new: bool) -> list[sa.Column]:
    """The outbox's columns at 0031 (``new``) or at 0030, in the order of their tables."""
    time = sa.DateTime(timezone=True)
    key = [sa.Column("destination_id", sa.Integer(), nullable=False)] if new else []
    old = [] if new else [sa.Column("destination", sa.String(64), nullable=False)]
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        *old,
        *key,
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        *([sa.Column("order_key", sa.String(129), nullable=False)] if new else []),
        sa.Column("state", sa.SmallInteger() if new else sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", time, nullable=False),
        sa.Column("created_at", time, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        *([] if new else [sa.Column("order_key", sa.String(129), nullable=False)]),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", time, nullable=True),
        sa.Column("first_attempt_at", time, nullable=True),
        sa.Column("last_attempt_at", time, nullable=True),
        sa.Column("delivered_at", time, nullable=True),
        sa.Column("last_status", sa.String(32), nullable=True),
        sa.Column("sent_version_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("care_facility", sa.String(64), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
    ]


def _check(new: bool) -> str:
    values = STATES.values() if new else (f"'{name}'" for name in STATES)
    return "state IN (" + ", ".join(str(v) for v in values) + ")"


def _rebuild_sqlite(new: bool) -> None:
    """Copy the outbox into its 0031 (``new``) or 0030 form."""
    columns = _columns(new)
    converted = {
        "destination_id": "(SELECT d.destination_id FROM outbox_destination d"
        " WHERE d.destination = outbox.destination)",
        "destination": "(SELECT d.destination FROM outbox_destination d"
        " WHERE d.destination_id = outbox.destination_id)",
        "state": _state_code() if new else _state_name(),
        **{c: (_micros(c) if new else _text(c)) for c in INSTANTS},
    }
    names = ", ".join(c.name for c in columns)
    select = ", ".join(converted.get(c.name, c.name) for c in columns)
    op.create_table(
        "outbox_rebuilt",
        *columns,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inbound_message.id"],
            ondelete="SET NULL",
            name=op.f("fk_outbox_message_id_inbound_message"),
        ),
        sa.CheckConstraint(_check(new), name=op.f(_CHECK)),
    )
    op.execute(f"INSERT INTO outbox_rebuilt ({names}) SELECT {select} FROM outbox")
    op.execute("DROP TABLE outbox")  # foreign keys off: the attempts stay
    op.execute("ALTER TABLE outbox_rebuilt RENAME TO outbox")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _indexes(new: bool) -> None:
    key = "destination_id" if new else "destination"
    op.create_index(_DUE, "outbox", ["state", "next_attempt_at"])
    op.create_index(op.f(_NEW_QUEUE if new else _OLD_QUEUE), "outbox", [key, "state", "order_key"])
    if _sqlite():  # the copy has none; PostgreSQL's stays as it is
        op.create_index(_MESSAGE, "outbox", ["message_id"])
    op.create_index(
        _SEQUENCE,
        "outbox",
        [key, "sequence"],
        unique=True,
        sqlite_where=_NUMBERED,
        postgresql_where=_NUMBERED,
    )


def _drop_indexes(new: bool) -> None:
    for name in (_DUE, _NEW_QUEUE if new else _OLD_QUEUE, _SEQUENCE):
        op.drop_index(name, "outbox")
    if _sqlite():
        op.drop_index(_MESSAGE, "outbox")


def _drop_state_check() -> None:
    """PostgreSQL: the state CHECK, whatever its name (0001's became
    ``ck_outbox_ck_outbox_state`` through the naming convention)."""
    for check in sa.inspect(op.get_bind()).get_check_constraints("outbox"):
        if "state" in (check.get("sqltext") or ""):
            op.execute(f'ALTER TABLE outbox DROP CONSTRAINT "{check["name"]}"')


def upgrade() -> None:
    op.create_table(
        "outbox_destination",
        sa.Column("destination_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("destination_id", name=op.f("pk_outbox_destination")),
        sa.UniqueConstraint("destination", name=op.f("uq_outbox_destination_destination")),
    )
    op.execute(
        "INSERT INTO outbox_destination (destination)"
        " SELECT DISTINCT destination FROM outbox ORDER BY destination"
    )
    _drop_indexes(new=False)
    if _sqlite():
        _rebuild_sqlite(new=True)
    else:
        _drop_state_check()
        op.add_column("outbox", sa.Column("destination_id", sa.Integer(), nullable=True))
        op.execute(
            "UPDATE outbox SET destination_id = d.destination_id FROM outbox_destination d"
            " WHERE d.destination = outbox.destination"
        )
        # one rewrite of the table (the dropped column's space goes with it)
        op.execute(
            "ALTER TABLE outbox ALTER COLUMN destination_id SET NOT NULL,"
            " DROP COLUMN destination,"
            f" ALTER COLUMN state TYPE smallint USING {_state_code()},"
            f" ADD CONSTRAINT {_CHECK} CHECK ({_check(True)})"
        )
    _indexes(new=True)


def downgrade() -> None:
    _drop_indexes(new=True)
    if _sqlite():
        _rebuild_sqlite(new=False)
    else:
        _drop_state_check()
        op.add_column("outbox", sa.Column("destination", sa.String(64), nullable=True))
        op.execute(
            "UPDATE outbox SET destination = d.destination FROM outbox_destination d"
            " WHERE d.destination_id = outbox.destination_id"
        )
        op.execute(
            "ALTER TABLE outbox ALTER COLUMN destination SET NOT NULL,"
            " DROP COLUMN destination_id,"
            f" ALTER COLUMN state TYPE varchar(16) USING {_state_name()},"
            f" ADD CONSTRAINT {_CHECK} CHECK ({_check(False)})"
        )
    _indexes(new=False)
    op.drop_table("outbox_destination")
