"""A database view or query (中间库 / 视图) as a night's source, through any SQLAlchemy URL.

The window is read ``ORDER BY watermark, key`` so a checkpoint (the last watermark and key
stored) says exactly where a resumed run goes on. The document is one column (HL7 v2 text,
XML, JSON) or, without ``document_column``, the whole row as a JSON object with sorted keys
(the same row always gives the same bytes), read by the source system's json mapping.
Watermarks are compared as the database holds them: naive local times are taken in the
consortium's time zone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from adapter.errors import ConfigError
from adapter.sync.config import DatabaseNight
from adapter.sync.fetch import Claim, Item, SourceDown, day_bounds

_BATCH = 500


class DatabaseFetcher:
    def __init__(self, sync_id: str, settings: DatabaseNight, zone: ZoneInfo) -> None:
        self.settings = settings
        self.zone = zone
        url = settings.url
        if url is None:
            url = os.environ.get(settings.url_env or "")
            if not url:
                raise ConfigError(
                    f"environment variable {settings.url_env} is not set",
                    key=f"sync.sources.{sync_id}.database.url_env",
                )
        try:
            self.safe_url = make_url(url).render_as_string(hide_password=True)
            self.engine: Engine = create_engine(url, poolclass=NullPool)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"cannot use this database URL ({type(exc).__name__}: {exc}); is its driver "
                "installed (PyMySQL for mysql+pymysql, psycopg for postgresql ...)?",
                key=f"sync.sources.{sync_id}.database.url",
            ) from None
        s = settings
        self.base = s.view if s.view else f"({s.query}) src"
        self.columns = [s.key_column, s.watermark_column]
        for extra in (s.day_column, s.document_column, s.status_column):
            if extra and extra not in self.columns:
                self.columns.append(extra)
        self.select = "*" if s.document_column is None else ", ".join(self.columns)

    # -- the contract ------------------------------------------------------------------------
    def check(self) -> None:
        self._run(lambda conn: conn.execute(text(f"SELECT 1 FROM {self.base} WHERE 1 = 0")))

    def window(self, day: date, watermark: str | None, overlap: timedelta) -> dict[str, Any]:
        start, _ = day_bounds(day, self.zone)
        since = start
        if watermark is not None:
            since = min(since, datetime.fromisoformat(watermark))
        until = datetime.now(self.zone)
        return {"since": (since - overlap).isoformat(), "until": until.isoformat()}

    def items(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]:
        s = self.settings
        wm, key = s.watermark_column, s.key_column
        where = f"{wm} > :since AND {wm} <= :until"
        params: dict[str, Any] = {
            "since": self._local(window["since"]),
            "until": self._local(window["until"]),
        }
        if after is not None:
            where += f" AND ({wm} > :cw OR ({wm} = :cw AND {key} > :ck))"
            params["cw"], params["ck"] = self._local(after[0]), after[1]
        sql = f"SELECT {self.select} FROM {self.base} WHERE {where} ORDER BY {wm}, {key}"
        yield from self._rows(sql, params)

    def total(self, window: dict[str, Any]) -> int | None:
        wm = self.settings.watermark_column
        sql = f"SELECT COUNT(*) FROM {self.base} WHERE {wm} > :since AND {wm} <= :until"
        params = {"since": self._local(window["since"]), "until": self._local(window["until"])}
        return int(self._run(lambda conn: conn.execute(text(sql), params).scalar_one()))

    def claim(self, day: date) -> Claim:
        s = self.settings
        if s.count_query and not s.list_query:
            count = self._run(lambda c: c.execute(text(s.count_query), {"day": day}).scalar_one())
            return Claim(how="count query", count=int(count))
        if s.list_query:
            sql, how = s.list_query, "list query"
            params: dict[str, Any] = {"day": day}
        else:
            sql, how = (
                f"SELECT {s.key_column} FROM {self.base} WHERE {self._day_filter()}",
                "the view",
            )
            params = self._day_params(day)
        keys = {str(row[0]) for row in self._run(lambda c: c.execute(text(sql), params).all())}
        deleted: set[str] = set()
        if s.status_column and not s.list_query:
            found = self._run(
                lambda c: c.execute(
                    text(
                        f"SELECT {s.key_column}, {s.status_column} FROM {self.base} "
                        f"WHERE {self._day_filter()}"
                    ),
                    params,
                ).all()
            )
            deleted = {str(k) for k, status in found if self._deleted(status)}
        return Claim(how=how, keys=keys, count=len(keys), deleted=deleted)

    def fetch_keys(self, day: date, keys: set[str]) -> Iterator[Item]:
        s = self.settings
        sql = text(
            f"SELECT {self.select} FROM {self.base} WHERE {s.key_column} IN :keys "
            f"ORDER BY {s.watermark_column}, {s.key_column}"
        ).bindparams(bindparam("keys", expanding=True))
        ordered = sorted(keys)
        for start in range(0, len(ordered), _BATCH):
            yield from self._rows(sql, {"keys": ordered[start : start + _BATCH]})

    def close(self) -> None:
        self.engine.dispose()

    # -- parts -------------------------------------------------------------------------------
    def _run(self, work: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise SourceDown(f"database {self.safe_url}: {_reason(exc)}") from None

    def _rows(self, sql: Any, params: dict[str, Any]) -> Iterator[Item]:
        s = self.settings
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(
                    text(sql) if isinstance(sql, str) else sql, params
                )
                for row in result.mappings():
                    yield self._item(dict(row))
        except SQLAlchemyError as exc:
            raise SourceDown(f"database {self.safe_url}: {_reason(exc)}") from None
        _ = s

    def _item(self, row: dict[str, Any]) -> Item:
        s = self.settings
        mark = _plain(row[s.watermark_column])
        day_value = row[s.day_column] if s.day_column else row[s.watermark_column]
        if isinstance(day_value, datetime):
            day = self._aware(day_value).date().isoformat()
        else:
            day = str(day_value)[:10]
        op = "deleted" if s.status_column and self._deleted(row[s.status_column]) else "new"
        if s.document_column is None:
            raw: bytes | None = json.dumps(
                {k: _plain(v) for k, v in row.items()},
                ensure_ascii=False,
                sort_keys=True,
                separators=(",", ":"),
            ).encode("utf-8")
        else:
            value = row[s.document_column]
            raw = (
                None
                if value is None
                else value
                if isinstance(value, bytes)
                else str(value).encode("utf-8")
            )
        return Item(
            key=str(row[s.key_column]),
            day=day,
            raw=raw,
            position=[mark, str(row[s.key_column])],
            op=op,
        )

    def _deleted(self, status: Any) -> bool:
        return status is not None and str(status).strip().lower() in {
            v.lower() for v in self.settings.deleted_values
        }

    def _day_filter(self) -> str:
        s = self.settings
        if s.day_column:
            return f"{s.day_column} = :day"
        return f"{s.watermark_column} >= :d0 AND {s.watermark_column} < :d1"

    def _day_params(self, day: date) -> dict[str, Any]:
        if self.settings.day_column:
            return {"day": day}
        start, end = day_bounds(day, self.zone)
        return {"d0": start.replace(tzinfo=None), "d1": end.replace(tzinfo=None)}

    def _local(self, value: Any) -> Any:
        """A window bound as the database compares it: naive local time (or a number)."""
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            if moment.tzinfo is not None:
                return moment.astimezone(self.zone).replace(tzinfo=None)
            return moment
        return value

    def _aware(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.zone) if value.tzinfo is None else value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _reason(exc: SQLAlchemyError) -> str:
    # the driver's first line names the problem (refused, unknown table); never the URL
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first[:300]}" if first else type(original).__name__
