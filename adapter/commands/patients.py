"""The patient-index commands: ``adapter patients ...`` (docs/patient-index.md).

adapter patients show PATIENT_OR_PERSON_ID     the person, its records and link history
adapter patients reviews [--state open]        the review queue (names masked)
adapter patients merge SURVIVOR MERGED --actor A [--reason R]
adapter patients unmerge MERGE_ID --actor A [--reason R] [--no-block]
adapter patients rematch --rules FILE          dry run: links a rule change would alter
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapter.commands import common
from adapter.errors import AdapterError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from adapter.runtime import Runtime

app = typer.Typer(help="The consortium patient index (患者主索引).", no_args_is_help=True)


def _open() -> Runtime:
    return common.start(logs=False, check_connectors=False, load_mappings=False, publish=False)


def _print(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command()
def show(patient_id: str) -> None:
    """A record's or a person's consortium person: records (masked), merges, history."""
    from adapter.identity import person_of
    from adapter.identity.index import records as rows
    from adapter.identity.index import review

    runtime = _open()
    with runtime.factory() as session:
        person = person_of(session, patient_id.removeprefix("Patient/"))
        records = rows.records_of_person(session, person)
        if not records:
            raise common.fail(f"Patient/{patient_id} is not in the patient index", code=1)
        _print(
            {
                "person": f"Patient/{person}",
                "records": [review.record_view(r, full_name=False) for r in records],
                "history": review.link_history(session, person_id=person),
            }
        )


@app.command()
def reviews(
    state: Annotated[str | None, typer.Option(help="open, claimed or resolved")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """The review queue, oldest first (names masked)."""
    from adapter.identity.index import records as rows
    from adapter.identity.index import review

    runtime = _open()
    with runtime.factory() as session:
        total, items = review.list_reviews(session, state=state, limit=limit)
        _print(
            {
                "total": total,
                "items": [
                    {
                        **review.item_summary(i),
                        "left": review.record_view(
                            rows.record(session, i.patient_id), full_name=False
                        ),
                        "right": review.record_view(
                            rows.record(session, i.other_id), full_name=False
                        ),
                    }
                    for i in items
                ],
            }
        )


def _publish(runtime: Runtime, session: Session, changed: set[str], now: datetime) -> None:
    from adapter.identity.index.publish import publish_and_enqueue

    config = runtime.consortium.patient_index
    if config.publish_persons:
        publish_and_enqueue(session, changed, destinations=list(config.deliver_to), now=now)


@app.command()
def merge(
    survivor: str,
    merged: str,
    actor: Annotated[str, typer.Option(help="Who decides (kept in the link history)")],
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Merge the person MERGED into SURVIVOR (every record of MERGED, as manual links)."""
    from adapter.identity.index import review
    from adapter.identity.rules import rules_at
    from adapter.pipeline.catchup import IdentityCare

    runtime = _open()
    now = datetime.now(UTC)
    try:
        with runtime.factory.begin() as session:
            persons = [survivor.removeprefix("Patient/"), merged.removeprefix("Patient/")]
            watch = IdentityCare(session, runtime.consortium, persons, now)
            merge_id, changed = review.merge_persons(
                session,
                *persons,
                actor=actor,
                reason=reason,
                rule_version=rules_at(runtime.consortium.patient_index.matching_rules).version,
                now=now,
            )
            watch.finish(changed, reason=f"merge {merge_id}")
            _publish(runtime, session, changed, now)
    except AdapterError as exc:
        raise common.fail(exc.message, code=1) from None
    _print({"merge": merge_id, "persons": sorted(f"Patient/{p}" for p in changed)})


@app.command()
def unmerge(
    merge_id: int,
    actor: Annotated[str, typer.Option(help="Who decides (kept in the link history)")],
    reason: Annotated[str | None, typer.Option()] = None,
    block: Annotated[
        bool, typer.Option(help="Never link the two sides automatically again")
    ] = True,
) -> None:
    """Undo a merge: every link exactly as it was before it."""
    from adapter.identity.index import review
    from adapter.identity.rules import rules_at

    runtime = _open()
    now = datetime.now(UTC)
    try:
        with runtime.factory.begin() as session:
            changed = review.unmerge(
                session,
                merge_id,
                actor=actor,
                reason=reason,
                block=block,
                rule_version=rules_at(runtime.consortium.patient_index.matching_rules).version,
                now=now,
            )
            _publish(runtime, session, changed, now)
    except AdapterError as exc:
        raise common.fail(exc.message, code=1) from None
    _print({"unmerged": merge_id, "persons": sorted(f"Patient/{p}" for p in changed)})


@app.command()
def rematch(
    rules: Annotated[Path, typer.Option(help="The new rules file to try (nothing is written)")],
    limit: Annotated[int, typer.Option(min=0, max=10000, help="Example pairs per list")] = 20,
) -> None:
    """Dry run of a rule change: the links it would add, remove or change."""
    from adapter.errors import ConfigError
    from adapter.identity.index.rematch import dry_run
    from adapter.identity.rules import load_rules

    try:
        new = load_rules(rules)
    except ConfigError as exc:
        raise common.fail(str(exc)) from None
    runtime = _open()
    with runtime.factory() as session:
        _print(dry_run(session, new).summary(limit))


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="patients")
