"""A database error's text (what tracebacks and logs show) carries no statement
parameters: engines are made with hide_parameters=True."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

NAME, NATIONAL_ID = "欧阳明华", "430999198511303175"


def test_a_failed_statement_does_not_quote_its_parameters(engine: Engine) -> None:
    with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
        # a unique key violation on a made-up row: the values are parameters
        statement = text(
            "INSERT INTO inbound_message (id, source_system, received_at, sha256, raw, size, "
            "status, issues, resources, attempts) VALUES "
            "(:id, :source, CURRENT_TIMESTAMP, :sha, :raw, 1, 'received', '[]', '[]', 0)"
        )
        row = {"id": "m1", "source": NAME, "sha": NATIONAL_ID, "raw": NAME.encode()}
        connection.execute(statement, row)
        connection.execute(statement, row)
    shown = str(raised.value)
    assert "INSERT INTO inbound_message" in shown
    assert "[SQL parameters hidden due to hide_parameters=True]" in shown
    # PostgreSQL quotes the key in DETAIL; the log redaction masks that line (test_logs)
    first_line = shown.split("\n")[0]
    assert NAME not in first_line and NATIONAL_ID not in first_line
    assert "parameters:" not in shown
