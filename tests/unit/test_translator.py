"""The translator needs no database: golden cases, ``adapter mappings test`` and ``translate``
use it on its own (adapter/pipeline/translator.py); the storing pipeline runs named steps
(adapter/pipeline/steps.py) after it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.errors import UnknownSourceError
from adapter.pipeline import Translator, steps

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"


def translator(mappings: Path = ROOT / "mappings", max_bytes: int = 1 << 20) -> Translator:
    return Translator(
        load_consortium(ROOT / "fixtures" / "consortium.yaml"),
        mappings_dir=mappings,
        max_bytes=max_bytes,
        default_timezone="Asia/Shanghai",
    )


def test_a_translator_translates_with_no_database_at_all() -> None:
    outcome = translator().translate(ORU.read_bytes(), "std-hl7v2")
    assert not outcome.failed, outcome.issues
    kinds = {r["resourceType"] for r in outcome.resources}
    assert {"Patient", "DiagnosticReport", "Observation"} <= kinds
    # the Patient carries its template's on_conflict policy, for the store to apply
    (patient,) = [r for r in outcome.resources if r["resourceType"] == "Patient"]
    assert outcome.policies[("Patient", patient["id"])]["policy"] == "update-given"


def test_an_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(UnknownSourceError, match="nope"):
        translator().translate(b"MSH|", "nope")
    with pytest.raises(UnknownSourceError, match="known: "):
        translator().source("nope")


def test_a_document_over_the_limit_fails_with_a_located_issue() -> None:
    outcome = translator(max_bytes=100).translate(ORU.read_bytes(), "std-hl7v2")
    assert outcome.failed and outcome.resources == []
    (issue,) = outcome.issues
    assert issue.location == "body" and "the limit is 100" in issue.diagnostics


def test_reload_source_picks_up_a_mapping_fix(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    t = translator(mappings)
    facility, source = t.source("std-hl7v2")
    before = t.translate(ORU.read_bytes(), "std-hl7v2")
    template = mappings / "_shared" / "hl7v2" / "resources" / "patient.yaml"
    template.write_text(
        template.read_text(encoding="utf-8").replace(
            "body:\n", "body:\n  implicitRules: urn:example:fixed\n", 1
        ),
        encoding="utf-8",
    )
    assert t.translate(ORU.read_bytes(), "std-hl7v2").resources == before.resources  # cached
    t.reload_source(facility, source)
    after = t.translate(ORU.read_bytes(), "std-hl7v2")
    (patient,) = [r for r in after.resources if r["resourceType"] == "Patient"]
    assert patient["implicitRules"] == "urn:example:fixed"
    assert t.loaded_sources() == ["std-hl7v2"]


def test_storing_runs_the_named_steps_in_order() -> None:
    assert [step.__name__ for step in steps.STEPS] == [
        "resolve_identity",
        "read_referral_status",
        "merge_with_stored",
        "flag_referral_paths",
        "mark_recognisable_results",
        "save",
        "apply_referral_status",
        "advance_referrals",
        "note_referral_ledger",
        "note_care",
        "route",
        "trace",
        "enqueue",
        "record_result",
        "audit_stored",
    ]
