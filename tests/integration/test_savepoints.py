"""Savepoints are sent as text, not compiled per name (adapter/store/engine.py, decision
0050 amended 2026-12-05 bulkcpu): the same statements, the same effect, on SQLite and, in
the ``-m db`` pass, PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import compiler

from adapter.store.models import SearchSystem


def _sent(engine: Engine) -> list[str]:
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "SAVEPOINT" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return statements


def test_savepoints_release_and_roll_back_without_compiling(
    engine: Engine, session_factory: sessionmaker[Session], monkeypatch: Any
) -> None:
    sent = _sent(engine)
    compiled: list[str] = []
    plain = compiler.SQLCompiler.__init__

    def counting(self: Any, dialect: Any, statement: Any, *args: Any, **kw: Any) -> None:
        plain(self, dialect, statement, *args, **kw)
        compiled.append(self.string)

    with session_factory.begin() as session:
        session.execute(select(SearchSystem.system_id))  # the transaction has begun
        monkeypatch.setattr(compiler.SQLCompiler, "__init__", counting)
        kept = session.begin_nested()
        session.add(SearchSystem(system="urn:kept", system_hash="1" * 64))
        session.flush()
        kept.commit()
        dropped = session.begin_nested()
        session.add(SearchSystem(system="urn:dropped", system_hash="2" * 64))
        session.flush()
        dropped.rollback()
        monkeypatch.undo()
    assert [s.split()[0:2] for s in sent] == [
        ["SAVEPOINT", "sa_savepoint_1"],
        ["RELEASE", "SAVEPOINT"],
        ["SAVEPOINT", "sa_savepoint_2"],
        ["ROLLBACK", "TO"],
    ]
    assert sent[1] == "RELEASE SAVEPOINT sa_savepoint_1"
    assert sent[3] == "ROLLBACK TO SAVEPOINT sa_savepoint_2"
    assert not [s for s in compiled if "SAVEPOINT" in s]
    with session_factory() as session:
        systems = set(session.scalars(select(SearchSystem.system)))
    assert "urn:kept" in systems and "urn:dropped" not in systems


def test_a_name_that_is_not_an_identifier_goes_the_usual_way(engine: Engine) -> None:
    sent = _sent(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT 1")
        engine.dialect.do_savepoint(connection, "odd name")
        engine.dialect.do_release_savepoint(connection, "odd name")
    assert sent == ['SAVEPOINT "odd name"', 'RELEASE SAVEPOINT "odd name"']
