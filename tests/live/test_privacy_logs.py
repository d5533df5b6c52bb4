"""What the real server writes to its log carries no patient data: a database error whose
statement parameters hold a name and a national ID, and searches whose query strings hold a
name, a birth date and an identifier, show up masked."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapter.store import make_engine
from tests.live.server import LiveServer

ORU = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2" / "oru"
TWO_ORDERS = ORU / "std-hl7v2" / "two-orders.hl7"
# the patient of two-orders.hl7 (fictitious)
FAMILY, GIVEN = "欧阳", "明华"
NATIONAL_ID = "430999198511303175"
PHONE = "18907310345"
ADDRESS = "柳河镇新街村5组"
BIRTH_DATE = "1985-11-30"
PROBE = "privacy_probe"


# the index rows of a patient's identifier (a row names its parameter by search_param's id,
# 0071); a family name is a dictionary value on PostgreSQL, not a row (decision 0117)
PROBED_PARAM = (
    "SELECT param_id FROM search_param WHERE resource_type = 'Patient'"
    " AND param = 'identifier' AND kind = 1"
)


def _fail_identifier_index_rows(database_url: str) -> None:
    """Make the database fail while storing the search index row of a patient's
    identifier, as a full disk would: a real database error (not a refusal of the data, so
    it is a 500 with a traceback), raised while the statement's parameters hold the
    patient's national ID, phone and birth date, on SQLite the name and address too (the
    index rows of the whole message go in at once)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            if make_url(database_url).get_backend_name() == "sqlite":
                # the function does not exist: SQLite fails the INSERT (SQLITE_ERROR)
                connection.execute(
                    text(
                        f"CREATE TRIGGER {PROBE} BEFORE INSERT ON search_index "
                        f"WHEN NEW.param_id IN ({PROBED_PARAM}) "
                        f"BEGIN SELECT {PROBE}_disk_full(); END"
                    )
                )
            else:
                # disk_full (SQLSTATE 53100), with the row in DETAIL as PostgreSQL writes
                # it for constraint errors ("Failing row contains (...)")
                connection.execute(
                    text(
                        f"CREATE FUNCTION {PROBE}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        f"BEGIN IF NEW.param_id IN ({PROBED_PARAM}) THEN RAISE EXCEPTION "
                        f"'{PROBE}: could not extend file: No space left on device' "
                        "USING ERRCODE = 'disk_full', "
                        "DETAIL = 'Failing row contains (' || coalesce(NEW.value, NEW.code)"
                        " || ').'; END IF; "
                        "RETURN NEW; END $$"
                    )
                )
                connection.execute(
                    text(
                        f"CREATE TRIGGER {PROBE} BEFORE INSERT ON search_index "
                        f"FOR EACH ROW EXECUTE FUNCTION {PROBE}()"
                    )
                )
    finally:
        engine.dispose()


def _remove_probe(database_url: str) -> None:
    """Drop the trigger again: on PostgreSQL the schema is shared by the tests of one worker
    (tables are emptied between tests, triggers are not)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"DROP TRIGGER IF EXISTS {PROBE}"
                    + (
                        ""
                        if make_url(database_url).get_backend_name() == "sqlite"
                        else " ON search_index"
                    )
                )
            )
            if make_url(database_url).get_backend_name() != "sqlite":
                connection.execute(text(f"DROP FUNCTION IF EXISTS {PROBE}()"))
    finally:
        engine.dispose()


def _forms(value: str) -> list[str]:
    """A value as it may appear in a log line: as is, percent-encoded, JSON-escaped."""
    forms = {value, quote(value), quote(value, safe=""), quote(value).lower()}
    forms.add(value.encode("unicode_escape").decode("ascii"))
    forms.add(str(value.encode("utf-8")))
    return sorted(forms)


def _leaks(log: str, *values: str) -> list[str]:
    return [v for v in values if any(form in log for form in _forms(v))]


def test_database_errors_and_search_queries_are_logged_masked(
    database_url: str, tmp_path: Path
) -> None:
    try:
        _run_failing_ingest_and_search(database_url, tmp_path)
    finally:
        _remove_probe(database_url)


def _run_failing_ingest_and_search(database_url: str, tmp_path: Path) -> None:
    with LiveServer(database_url, tmp_path, start_timeout=120) as server:
        _fail_identifier_index_rows(database_url)  # after start-up, which writes index rows too
        answer = httpx.post(
            server.url("/ingest"),
            content=TWO_ORDERS.read_bytes(),
            headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
            timeout=30,
        )
        assert answer.status_code == 500, answer.text  # the database failed, not the data
        # answered outside the middleware stack, and still with nosniff
        assert answer.headers["x-content-type-options"] == "nosniff"
        search = httpx.get(
            server.url("/fhir/Patient"),
            params={
                "name": FAMILY + GIVEN,
                "family": FAMILY,
                "birthdate": BIRTH_DATE,
                "identifier": f"urn:oid:2.16.156.10011.1.3|{NATIONAL_ID}",
                "telecom": PHONE,
                "_count": "5",
            },
            timeout=30,
        )
        assert search.status_code == 200, search.text
        assert search.json()["total"] == 0
    log = server.log_text()
    # the failure really happened and was logged, with its statement ...
    assert PROBE in log
    # (one INSERT per row, or COPY on PostgreSQL, whose error quotes the input line)
    assert "INSERT INTO search_index" in log or "COPY search_index" in log
    # ... but none of the patient's data, in any encoding
    assert _leaks(log, FAMILY, GIVEN, NATIONAL_ID, PHONE, ADDRESS, BIRTH_DATE, "19851130") == []
    # what is there instead: the statement's parameters hidden, the query's values masked
    if "COPY search_index" in log:  # the input line COPY quotes is masked
        assert "COPY search_index, line" in log and "[REDACTED-DB-VALUES]" in log
    else:
        assert "[SQL parameters hidden due to hide_parameters=True]" in log
    access = [line for line in log.splitlines() if "GET /fhir/Patient?" in line]
    assert len(access) == 1, log
    assert "name=***" in access[0] and "birthdate=***" in access[0]
    assert "identifier=***" in access[0] and "_count=5" in access[0]
    assert " 200 " in access[0]


def test_a_whole_day_of_traffic_leaves_no_personal_data_in_the_log(
    database_url: str, tmp_path: Path
) -> None:
    """Every ORU fixture and every bad one ingested, searched for by name, birth date,
    identifier and phone, read, listed, downloaded and reprocessed, at DEBUG level: no
    name, national ID or phone number of any fixture patient is in the server's log."""
    from tests.integration.test_cli import PERSONAL

    assert len(PERSONAL) > 40  # names, national IDs and phones of every fixture patient
    bad = sorted((ORU.parent / "bad").glob("*.hl7"))
    with LiveServer(
        database_url, tmp_path, env={"ADAPTER_LOG_LEVEL": "DEBUG"}, start_timeout=120
    ) as server:
        client = httpx.Client(base_url=server.base_url, timeout=60)
        message_ids = []
        for folder in sorted(p for p in ORU.iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.hl7")):
                answer = client.post(
                    "/ingest",
                    content=path.read_bytes(),
                    headers={"X-Source-System": folder.name, "Content-Type": "application/hl7-v2"},
                )
                assert answer.status_code == 202, (path, answer.text)
                message_ids.append(answer.headers["X-Message-Id"])
        for path in bad:
            answer = client.post(
                "/ingest",
                content=path.read_bytes(),
                headers={"X-Source-System": "std-hl7v2", "Content-Type": "application/hl7-v2"},
            )
            assert answer.status_code in (202, 413, 422), (path, answer.status_code)
            message_ids.append(answer.headers["X-Message-Id"])
        for value in PERSONAL:
            for name in ("name", "identifier", "telecom", "phone"):
                assert client.get("/fhir/Patient", params={name: value}).status_code in (200, 400)
        found = client.get("/fhir/Patient", params={"birthdate": BIRTH_DATE, "_count": 50})
        assert found.status_code == 200 and found.json()["total"] >= 1
        for message_id in message_ids[:5] + message_ids[-3:]:
            assert client.get(f"/messages/{message_id}").status_code == 200
            assert client.get(f"/messages/{message_id}/raw").status_code == 200
            client.post(f"/messages/{message_id}/reprocess")
        assert client.get("/messages", params={"status": "quarantined"}).status_code == 200
        client.close()
    log = server.log_text()
    leaked = _leaks(log, *PERSONAL)
    assert leaked == [], f"{len(leaked)} personal values in the server log"
    assert log.count("adapter.access") > len(PERSONAL) * 4  # the requests were logged
