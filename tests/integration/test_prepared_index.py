"""``save_resources(prepared=...)``: the patient key and index rows a translation worker
derived from a resource's content (adapter/store/resources.py ``prepare``, decision 0050
amended 2026-12-05 bulkcpu) are used for a resource with that content, and only for it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.dates import DEFAULT_ZONE
from adapter.fhir.index_values import index_values, patient_key
from adapter.store import save_resources
from adapter.store.models import Resource, SearchParam, SearchSystem
from adapter.store.resources import (
    Prepared,
    _index_tuples,
    _meta_changed,
    content_hash,
    prepare,
)
from adapter.store.search_tokens import index_rows

T0 = datetime(2026, 5, 3, 2, 0, 0, tzinfo=UTC)


def observation(rid: str, **extra: object) -> dict:
    base = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hb"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-05-03T10:00:00",  # no zone: read in the given zone
        "valueQuantity": {"value": 135, "unit": "g/L", "system": "http://unitsofmeasure.org"},
    }
    return {**base, **extra}


def stored(session: Session, rid: str) -> tuple[str | None, list[tuple]]:
    """The resource's patient key and index rows (without its key), in a stable order."""
    pkey = session.scalars(select(Resource.patient_key).where(Resource.id == rid)).one()
    si, sp = index_rows(), SearchParam.__table__  # PostgreSQL's arrays as rows too (0103)
    rows = session.execute(
        select(
            sp.c.param,
            si.c.kind,
            SearchSystem.system,
            si.c.code,
            si.c.value,
            si.c.value_norm,
            si.c.value_date_start,
            si.c.value_date_end,
            si.c.value_number,
            si.c.reference,
        )
        .select_from(si)
        .join(sp, sp.c.param_id == si.c.param_id)
        .join(Resource, Resource.resource_key == si.c.resource_key)
        .outerjoin(SearchSystem, SearchSystem.system_id == si.c.system_id)
        .where(Resource.id == rid)
    ).all()
    return pkey, sorted((tuple(r) for r in rows), key=repr)


def tampered(resource: dict, zone: str = str(DEFAULT_ZONE)) -> Prepared:
    """A Prepared for ``resource``'s content whose rows say something it does not: stored
    only if the lookup is used."""
    [tail] = prepare([observation("x")], DEFAULT_ZONE).rows.values()
    row = list(tail[1][0])
    row[3] = "tampered"  # the code
    return Prepared(zone, {content_hash(resource): ("Patient/elsewhere", [tuple(row)])})


def test_prepared_rows_are_the_rows_the_store_derives(session_factory: sessionmaker) -> None:
    plain, ready = observation("o1"), observation("o2")  # the same content but the id
    prepared = prepare([ready], DEFAULT_ZONE)
    with session_factory.begin() as session:
        save_resources(session, [plain], message_id=None, now=T0)
        save_resources(session, [ready], message_id=None, now=T0, prepared=prepared)
    with session_factory() as session:
        derived, given = stored(session, "o1"), stored(session, "o2")
    assert derived[0] == "Patient/p1"
    assert len(derived[1]) >= 4  # code, subject/patient, date, value-quantity ...
    assert given == derived


def test_prepared_rows_are_used_for_that_content(session_factory: sessionmaker) -> None:
    resource = observation("o3")
    with session_factory.begin() as session:
        save_resources(session, [resource], message_id=None, now=T0, prepared=tampered(resource))
    with session_factory() as session:
        pkey, rows = stored(session, "o3")
    assert pkey == "Patient/elsewhere"
    assert [r[3] for r in rows] == ["tampered"]


def test_a_resource_changed_since_or_another_zone_is_derived_again(
    session_factory: sessionmaker,
) -> None:
    changed = observation("o4")
    before_merge = tampered(dict(changed))
    changed["status"] = "amended"  # e.g. merged with the stored version after translation
    other_zone = observation("o5")
    elsewhere = tampered(other_zone, zone=str(ZoneInfo("Europe/Berlin")))
    with session_factory.begin() as session:
        save_resources(session, [changed], message_id=None, now=T0, prepared=before_merge)
        save_resources(session, [other_zone], message_id=None, now=T0, prepared=elsewhere)
        save_resources(session, [observation("o6", status="amended")], message_id=None, now=T0)
        save_resources(session, [observation("o7")], message_id=None, now=T0)
    with session_factory() as session:
        assert stored(session, "o4") == stored(session, "o6")
        assert stored(session, "o5") == stored(session, "o7")
        assert stored(session, "o4")[0] == "Patient/p1"
        assert "tampered" not in {r[3] for r in stored(session, "o5")[1]}


MARK = {"system": "https://example.org/CodeSystem/recognition-mark", "code": "HR"}


def marked(resource: dict, *tags: dict) -> dict:
    """``resource`` as the recognition step leaves it: tags added in ``meta`` alone."""
    out = copy.deepcopy(resource)
    out.setdefault("meta", {}).setdefault("tag", []).extend(tags)
    return out


def derived_tails(resource: dict) -> list[tuple]:
    return [r[2:] for r in _index_tuples(resource["resourceType"], 0, index_values(resource))]


def test_a_resource_changed_in_meta_alone_keeps_its_other_rows_exactly() -> None:
    """Decision 0104: the mark set by the storing process changes ``meta`` alone; the rows
    kept from the worker's and the ``meta`` rows derived again are exactly, in order, the
    rows derived from the marked resource."""
    with_profile = observation("m2", meta={"profile": ["http://example.org/p"], "tag": [MARK]})
    cases = [
        (observation("m1"), marked(observation("m1"), MARK)),
        (with_profile, marked(with_profile, {"system": "urn:x", "code": "y"})),
        (marked(observation("m3"), MARK), observation("m3")),  # the mark taken off
    ]
    for before, after in cases:
        prepared = prepare([before], DEFAULT_ZONE)
        done = _meta_changed(prepared, ("Observation", before["id"]), after, DEFAULT_ZONE)
        assert done is not None
        assert done == (patient_key(after), derived_tails(after))
    # changed elsewhere too: derived again, not taken
    other = marked(observation("m4", status="amended"), MARK)
    prepared = prepare([observation("m4")], DEFAULT_ZONE)
    assert _meta_changed(prepared, ("Observation", "m4"), other, DEFAULT_ZONE) is None


def test_the_prepared_meta_is_a_copy() -> None:
    resource = observation("m5", meta={"tag": [{"system": "urn:x", "code": "y"}]})
    prepared = prepare([resource], DEFAULT_ZONE)
    resource["meta"]["tag"].append(MARK)  # the step marks in place
    assert prepared.metas is not None
    assert prepared.metas[("Observation", "m5")][1] == {"tag": [{"system": "urn:x", "code": "y"}]}


def test_a_marked_resource_keeps_the_prepared_rows(session_factory: sessionmaker) -> None:
    """Stored with the rows of its unmarked content (tampered here, to show they are used)
    and its ``_tag`` row; a resource changed elsewhere too is derived again."""
    plain = observation("o8")
    prepared = tampered(plain)
    prepared = prepared._replace(metas={("Observation", "o8"): (content_hash(plain), None)})
    with session_factory.begin() as session:
        save_resources(session, [marked(plain, MARK)], message_id=None, now=T0, prepared=prepared)
        save_resources(session, [marked(observation("o9"), MARK)], message_id=None, now=T0)
    with session_factory() as session:
        pkey, rows = stored(session, "o8")
        _, reference = stored(session, "o9")
    assert pkey == "Patient/p1"  # the patient key is derived (cheap), not taken
    assert "tampered" in {r[3] for r in rows}
    assert [r for r in rows if r[0] == "_tag"] == [r for r in reference if r[0] == "_tag"]
    assert [r for r in reference if r[0] == "_tag"]
