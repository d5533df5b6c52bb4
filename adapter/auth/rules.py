"""The rule table: for every route of the HTTP API (by route name), which roles may call
it and how the caller's facility limits what it sees. A route without a rule is refused
(500, and the authorisation matrix test fails), so a new endpoint cannot be open by
omission.

Limits:

* ``public``    no token (the token endpoint, health, the CapabilityStatement, the API docs)
* ``none``      any client with one of the roles; nothing facility-specific is served
* ``source``    ``X-Source-System`` must be a source system of the client's facility
* ``facility``  the route serves only the client's facility's messages, deliveries and
                care (the handler filters; 404 for another facility's message or delivery)
                unless the client has ``scope: consortium``
* ``consortium`` consortium-wide work (the patient index): ``scope: consortium`` only
* ``care``      FHIR reads: resources of persons in the care of the client's facility, and
                the directory (Organization, Practitioner ...) (adapter/api/scope.py)

Separation of duties (三员分立): the auditor reads the audit log and nothing else; no role
may change it (PUT / DELETE AuditEvent answer 405 to every role); admin runs the adapter
(metrics, messages, deliveries, care) but reads no clinical data and no audit records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Limit = Literal["public", "none", "source", "facility", "consortium", "care"]
ROLES = ("source", "reader", "operator", "auditor", "admin")


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[str]
    limit: Limit


def _rule(limit: Limit, *roles: str) -> Rule:
    return Rule(frozenset(roles), limit)


PUBLIC = _rule("public")
_RUN = ("operator", "admin")  # running the exchange: messages, deliveries, care
_FHIR = _rule("care", "reader")

RULES: dict[str, Rule] = {
    # no token
    "token": PUBLIC,
    "docs_page": PUBLIC,
    "health": PUBLIC,
    "fhir_metadata": PUBLIC,
    # sources send
    "ingest": _rule("source", "source"),
    # operators (and the administrator) run the exchange for their facility
    "metrics": _rule("none", *_RUN),
    "messages": _rule("facility", *_RUN),
    "message": _rule("facility", *_RUN),
    "message_raw": _rule("facility", "operator"),  # raw content: operators only
    "fhir_binary": _rule("facility", "operator"),
    "reprocess": _rule("facility", *_RUN),
    "reprocess_by_status": _rule("facility", *_RUN),
    "deliveries": _rule("facility", *_RUN),
    "delivery": _rule("facility", *_RUN),
    "replay_destination": _rule("facility", *_RUN),
    "replay": _rule("facility", *_RUN),
    "list_care": _rule("facility", *_RUN),
    "care_team": _rule("facility", *_RUN),
    "grant": _rule("facility", *_RUN),
    "revoke": _rule("facility", *_RUN),
    "register": _rule("facility", *_RUN),
    "close_referral": _rule("consortium", *_RUN),
    # the patient index spans the consortium
    "patient_match": _rule("consortium", *_RUN),
    "patient_pix": _rule("consortium", *_RUN),
    "lookup_identifier": _rule("consortium", *_RUN),
    "person": _rule("consortium", *_RUN),
    "reviews": _rule("consortium", *_RUN),
    "review_item": _rule("consortium", *_RUN),
    "claim": _rule("consortium", *_RUN),
    "resolve": _rule("consortium", *_RUN),
    "merge": _rule("consortium", *_RUN),
    "unmerge": _rule("consortium", *_RUN),
    # the audit log: read by the auditor only; changes refused (405) to everyone
    "audit_search": _rule("none", "auditor"),
    "audit_read": _rule("none", "auditor"),
    "_refuse": _rule("none", *ROLES),
    # FHIR reads within the facility's care
    "fhir_read": _FHIR,
    "fhir_vread": _FHIR,
    "fhir_search": _FHIR,
    "fhir_search_post": _FHIR,
    "fhir_search_system": _FHIR,
    "fhir_history": _FHIR,
    "fhir_history_type": _FHIR,
    "fhir_history_system": _FHIR,
    "fhir_everything": _FHIR,
    "fhir_document": _FHIR,
    "fhir_validate": _rule("none", "reader", "source"),  # checks a body, discloses nothing
    # 检查检验结果互认: a doctor's application asks about, and decides for, persons in its
    # facility's care, for its own facility; the monthly rates are aggregates (no person)
    "fhir_recognisable": _FHIR,
    "fhir_recognisable_by_identifier": _FHIR,
    "fhir_recognisable_shown": _FHIR,
    "fhir_recognition_decision": _FHIR,
    "recognition_rate": _rule("none", *_RUN),
    # referral Task changes (docs/referral-loop.md): the facility of the token must be the
    # referral's sender or receiver, which the state machine checks (403 otherwise)
    "referral_task_put": _rule("none", "reader", "operator"),
    "referral_task_patch": _rule("none", "reader", "operator"),
    # the 转诊台账, its analysis and the overdue worklist (docs/ledger.md): a facility's
    # medical affairs office sees the referrals its facility sent or received
    "referral_ledger": _rule("facility", "reader", "operator"),
    "referral_incomplete": _rule("facility", "reader", "operator"),
    "referral_analysis": _rule("facility", "reader", "operator"),
    "referral_worklist": _rule("facility", "reader", "operator"),
}
