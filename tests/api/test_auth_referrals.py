"""Referral Task changes with authentication on: the facility asking is the token's, never
a header's (docs/referral-loop.md, docs/security.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapter.pipeline import Receipt
from tests.api.auth_helpers import COUNTY, auth_client
from tests.integration.referral_support import PATCH_TYPE, UP_SLIP, status_ops


def test_the_token_s_facility_is_the_party(database_url: str, tmp_path: Path) -> None:
    with auth_client(database_url, tmp_path) as (app, tokens):
        result = app.state.pipeline.ingest(
            UP_SLIP.read_bytes(), Receipt("shiqiao-his", "cli", received_at=datetime.now(UTC))
        )
        task = next(r for r in result.resources if r.startswith("Task/"))
        client = tokens.client

        def patch(client_id: str, status: str, **headers: str) -> object:
            return client.patch(
                f"/fhir/{task}",
                json=status_ops(status),
                headers=tokens.headers(client_id, **PATCH_TYPE, **headers),
            )

        # no token: 401; a role without referral rights: 403
        assert client.patch(f"/fhir/{task}", json=status_ops("received")).status_code == 401
        assert patch("county-auditor", "received").status_code == 403
        # the sender's client may not speak for the receiver through the header
        assert patch("shiqiao-reader", "received", **{"X-Facility": COUNTY}).status_code == 403
        # ... and as itself, the sender, may not set a receiver's status (the rule is named)
        refused = patch("shiqiao-reader", "accepted")
        assert refused.status_code == 409, refused.text
        assert "refused by rule" in refused.json()["issue"][0]["diagnostics"]
        # the receiver's client moves it, naming its own facility or none
        moved = patch("county-reader", "received", **{"X-Facility": COUNTY})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == "received"
        assert patch("county-operator", "accepted").status_code == 200


def test_the_ledger_is_scoped_to_the_facility(database_url: str, tmp_path: Path) -> None:
    """A facility's office sees the referrals its facility sent or received: 石桥 (sender)
    and the county (receiver) see 石桥's slip, naming another facility is
    refused; the auditor and the administrator read no ledger. 柳河's slip to the county is
    the county's, not 石桥's."""
    with auth_client(database_url, tmp_path) as (app, tokens):
        app.state.pipeline.ingest(
            UP_SLIP.read_bytes(), Receipt("shiqiao-his", "cli", received_at=datetime.now(UTC))
        )
        liuhe = UP_SLIP.parents[3] / "json/referral/liuhe-his-json/up-slip.json"  # 柳河 -> county
        made = app.state.pipeline.ingest(
            liuhe.read_bytes(), Receipt("liuhe-his-json", "cli", received_at=datetime.now(UTC))
        )
        assert made.status.startswith("processed"), made.issues
        client = tokens.client

        def ledger(client_id: str, **params: str) -> object:
            return client.get("/referrals/ledger", params=params, headers=tokens.headers(client_id))

        assert client.get("/referrals/ledger").status_code == 401
        for client_id, seen in (
            ("shiqiao-reader", 1),
            ("county-reader", 2),
            ("county-operator", 2),
        ):
            answer = ledger(client_id)
            assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
            assert len(answer.json()["rows"]) == seen, client_id  # type: ignore[attr-defined]
        assert ledger("county-auditor").status_code == 403  # type: ignore[attr-defined]
        assert ledger("county-admin").status_code == 403  # type: ignore[attr-defined]
        named = ledger("shiqiao-reader", facility="liuhe-township-centre")
        assert named.status_code == 403  # type: ignore[attr-defined]
        for path in ("/referrals/analysis?from=2026-11-01&to=2026-11-30", "/referrals/worklist"):
            assert client.get(path, headers=tokens.headers("county-reader")).status_code == 200
