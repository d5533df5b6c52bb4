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

Rules made with ``_page`` are the console's (adapter/console): a session cookie instead of
a bearer token, a CSRF token on every POST; the limits mean the same.

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
    # the console's pages (adapter/console): authenticated by its session cookie, not a
    # bearer token; a POST needs the session's CSRF token (adapter/console/access.py)
    session: bool = False


def _rule(limit: Limit, *roles: str) -> Rule:
    return Rule(frozenset(roles), limit)


def _page(limit: Limit, *roles: str) -> Rule:
    return Rule(frozenset(roles), limit, session=True)


PUBLIC = _rule("public")
_RUN = ("operator", "admin")  # running the exchange: messages, deliveries, care
_FHIR = _rule("care", "reader")

RULES: dict[str, Rule] = {
    # no token
    "token": PUBLIC,
    "jwks": PUBLIC,
    "smart_configuration": PUBLIC,
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
    "audit_disclosures": _rule("none", "auditor"),
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
    "fhir_recognition_viewed": _FHIR,
    "recognition_rate": _rule("none", *_RUN),
    # names patients (ids only): the operators of the ordering facility, or the consortium's
    "recognition_corrections": _rule("facility", "operator"),
    # a person's consent that a facility be shown their results for recognition: recorded
    # (and withdrawn) by the facility it allows, at its desk (reader) or by its operators
    "recognition_consent": _rule("facility", "reader", "operator"),
    "recognition_consent_revoke": _rule("facility", "reader", "operator"),
    # referral Task changes (docs/referral-loop.md): the facility of the token must be the
    # referral's sender or receiver, which the state machine checks (403 otherwise)
    "referral_task_put": _rule("none", "reader", "operator"),
    "referral_task_patch": _rule("none", "reader", "operator"),
    # the console (docs/console.md): the same roles and limits, by session cookie. Its login
    # and language pages are public; each page shows only what the rule's limit allows
    "console_login": PUBLIC,
    "console_login_post": PUBLIC,
    "console_language": PUBLIC,
    "console_logout": _page("none", *ROLES),
    "console_home": _page("none", *ROLES),
    "console_overview": _page("facility", *_RUN),
    "console_overview_data": _page("facility", *_RUN),
    "console_messages": _page("facility", *_RUN),
    "console_message": _page("facility", *_RUN),
    "console_message_raw": _page("facility", "operator"),  # raw content: operators only
    "console_reprocess": _page("facility", *_RUN),
    "console_reprocess_many": _page("facility", *_RUN),
    "console_deliveries": _page("facility", *_RUN),
    "console_delivery": _page("facility", *_RUN),
    "console_replay": _page("facility", *_RUN),
    "console_replay_many": _page("facility", *_RUN),
    "console_pause": _page("facility", *_RUN),
    "console_patients": _page("consortium", *_RUN),
    "console_review": _page("consortium", *_RUN),
    "console_review_claim": _page("consortium", *_RUN),
    "console_review_resolve": _page("consortium", *_RUN),
    "console_person": _page("consortium", *_RUN),
    "console_merge": _page("consortium", *_RUN),
    "console_unmerge": _page("consortium", *_RUN),
    "console_recognition": _page("facility", *_RUN),
    "console_referrals": _page("facility", "reader", "operator"),
    "console_referral": _page("facility", "reader", "operator"),
    "console_referral_ledger": _page("facility", "reader", "operator"),
    "console_referral_ledger_export": _page("facility", "reader", "operator"),
    "console_referral_analysis": _page("facility", "reader", "operator"),
    "console_mappings": _page("facility", *_RUN),
    "console_mappings_run": _page("none", *_RUN),
    "console_audit": _page("none", "auditor"),
    "console_audit_verify": _page("none", "auditor"),
    "console_disclosures": _page("none", "auditor"),
    # the 转诊台账, its analysis and the overdue worklist (docs/ledger.md): a facility's
    # medical affairs office sees the referrals its facility sent or received
    "referral_ledger": _rule("facility", "reader", "operator"),
    "referral_incomplete": _rule("facility", "reader", "operator"),
    "referral_analysis": _rule("facility", "reader", "operator"),
    "referral_worklist": _rule("facility", "reader", "operator"),
    # a follow-up (随访) by the facility that follows the patient up: its own referrals only
    "referral_follow_up": _rule("facility", "reader", "operator"),
}
