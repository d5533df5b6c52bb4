"""The fuzz suite's check of one input through the real ingest path (the FastAPI app on a
real database), and the tally of what became of the inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import InboundMessage

STORED = ("processed", "processed-with-warnings", "quarantined")


@dataclass
class Tally:
    inputs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    issues: int = 0
    located: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (
            f"inputs {self.inputs} (database now holds {len(self.ids)} distinct messages): "
            f"processed {self.statuses['processed']}, "
            f"with warnings {self.statuses['processed-with-warnings']}, "
            f"quarantined {self.statuses['quarantined']}; issues {self.issues}, "
            f"located {self.located}"
        )


def ingest_and_check(
    client: TestClient,
    factory: sessionmaker[Session],
    tally: Tally,
    source: str,
    content_type: str,
    raw: bytes,
) -> None:
    """POST one input; assert no 5xx, the input stored (one inbound message row per distinct
    input, whatever it was) and every issue of the stored message located."""
    response = client.post(
        "/ingest", content=raw, headers={"X-Source-System": source, "Content-Type": content_type}
    )
    assert response.status_code in (202, 413, 422), (response.status_code, response.text[:800])
    message_id = response.headers.get("X-Message-Id")
    assert message_id, response.text[:800]
    with factory() as session:
        message = session.get(InboundMessage, message_id)
        assert message is not None, f"message {message_id} answered but not stored"
        assert message.raw == raw, "the stored bytes are not the bytes sent"
        status, issues = message.status, list(message.issues or [])
        rows = session.scalar(select(func.count()).select_from(InboundMessage))
    assert status in STORED, status
    tally.inputs += 1
    tally.ids.add(message_id)
    assert rows == len(tally.ids), "an input was not stored, or stored twice"
    tally.statuses[status] += 1
    if status == "quarantined":
        assert response.status_code in (413, 422)
        assert any(i["severity"] in ("error", "fatal") for i in issues), issues
    unlocated = [i for i in issues if not i.get("location")]
    assert not unlocated, f"issues without a location: {unlocated}"
    assert not any("internal error" in i["diagnostics"] for i in issues), issues
    tally.issues += len(issues)
    tally.located += len(issues) - len(unlocated)
    tally.codes.update(i["code"] for i in issues if i["severity"] in ("error", "fatal"))
