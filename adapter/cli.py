"""The ``adapter`` command: one typer app assembled from the command modules by area
(adapter/commands/): serve, messages (ingest, messages, show, reprocess), demo, mappings,
connectors (connectors check, listen, poll), delivery (worker, deliveries, replay),
search (reindex), store (compact, check-index), care (care list, grant, revoke, register,
close-referral), patients (the patient index: show, reviews, merge, unmerge, rematch),
sync (the nightly synchronisation), remap, audit (verify, checkpoints, disclosures,
grants) and recognition (recognition check, query, decide, rate) and referrals (show,
accept, reject, arrive, close, cancel).
Every command that starts the adapter goes through commands.common.start, that is
adapter.runtime.build_runtime, as ``adapter serve`` does (adapter.api.app.create_app).
"""

from __future__ import annotations

import sys

import typer

from adapter.commands import (
    audit,
    auth,
    care,
    connectors,
    delivery,
    demo,
    mappings,
    messages,
    patients,
    recognition,
    referrals,
    remap,
    search,
    serve,
    store,
    sync,
)

app = typer.Typer(
    help="HL7 FHIR R4 adapter for county medical consortia (医共体).",
    no_args_is_help=True,
    add_completion=False,
)
for area in (
    serve,
    messages,
    demo,
    mappings,
    delivery,
    connectors,
    search,
    store,
    care,
    patients,
    sync,
    remap,
    audit,
    auth,
    recognition,
    referrals,
):
    area.register(app)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # python -m adapter.cli (tests start the real server this way)
    app()
