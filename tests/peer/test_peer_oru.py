"""The peer ORU^R01 messages (fixtures/peer) through the standard mapping (source std-hl7v2).

Every ORU^R01 input listed in fixtures/peer/MANIFEST.md (Microsoft FHIR-Converter,
LinuxForHealth hl7v2-fhir-converter, CDC trusted-intermediary) must:

* translate without an exception;
* either be translated, every produced resource valid FHIR R4 (tests/fhir_checks), or be
  quarantined with located errors — only the messages of ``EXPECTED_QUARANTINE``, each with
  the reason the message is really bad;
* account for every OBX: an Observation, or an issue naming that OBX.

Where a peer gives its output (Microsoft ``*-expected.json``, CDC ``*_1_hl7_translation.fhir``),
our Observations are compared with the peer's (tests/peer/peer_compare.py): value, unit, UCUM
code, code system and code, status, interpretation, reference range bounds. Every difference
must be listed in ``KNOWN_DIFFERENCES`` with the reason (the peer is wrong, or differs by
design); the default is "must agree". The same table, explained, is in
docs/decisions/0004-peer-comparison.md. LinuxForHealth gives only resource counts
(``expectations.json``): the counts of the resource types this mapping makes from an ORU are
checked where the peer asserted one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import Issue, MessageError
from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.mappings.conftest import FIXTURES
from tests.peer.peer_compare import (
    Comparison,
    Difference,
    compare_observations,
    key_code,
    load_bundle_observations,
)

PEER = FIXTURES / "peer"
SOURCE = "std-hl7v2"
MICROSOFT = "microsoft-FHIR-Converter"
LFH = "LinuxForHealth-hl7v2-fhir-converter"
CDC = "CDCgov-trusted-intermediary"


def manifest_inputs() -> list[str]:
    """Every ORU^R01 input the MANIFEST lists, as paths below fixtures/peer (the CDC negative
    inputs are left out: the MANIFEST says none of them is an ORU^R01)."""
    out: list[str] = []
    folder = None
    for line in (PEER / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## .*`([^`]+)/`", line)
        if heading:
            folder = heading.group(1)
            continue
        row = re.match(r"^\| ([^|]+\.hl7) \|", line)
        if row and folder and not row.group(1).startswith("negative/"):
            out.append(f"{folder}/{row.group(1).strip()}")
    return out


INPUTS = manifest_inputs()

# -- messages that are really bad: quarantined, with the location of the error and why --------

NO_ORDER = (
    "no OBR: ORU_R01 requires at least one ORDER_OBSERVATION group (OBR); the peer's "
    "test exercises PID/PV1 only"
)
NO_OBX3 = (
    "OBX-3 (observation identifier, required in v2.5.1) is empty: the result cannot be "
    "identified, so a correction could never replace it"
)

EXPECTED_QUARANTINE: dict[str, tuple[str, str]] = {
    # file: (location an error must start with, why the message is really bad)
    f"{MICROSOFT}/ORU-R01-01.hl7": (
        "ORC[1]",
        "not an ORU_R01 structure: OBX, PRT and TXA (v2.8 segments) between ORC and "
        "its OBR, so the first ORDER_OBSERVATION has no OBR; a converter's feature "
        "sampler, not a lab message",
    ),
    f"{LFH}/FHIRConverterTest__test_nte_split_print_structure_on_dash.hl7": (
        "PID[1]-3",
        "PID-3 (patient identifier list, required) is empty: no patient to attach the result to",
    ),
    f"{LFH}/Hl7EncounterFHIRConversionTest__test_encounter_PV1_serviceProvider__ORU_R01.hl7": (
        "PID[1]",
        NO_ORDER,
    ),
    f"{LFH}/Hl7EncounterFHIRConversionTest__test_encounter_PV2segment_missing__ORU_R01.hl7": (
        "PID[1]",
        NO_ORDER,
    ),
    f"{LFH}/Hl7EncounterFHIRConversionTest__test_encounter_with_serviceProvider_from_PV1_3_4__ORU_R01.hl7": (  # noqa: E501
        "PID[1]",
        NO_ORDER,
    ),
    f"{LFH}/Hl7EncounterFHIRConversionTest__test_encounter_with_serviceProvider_from_PV2__ORU_R01.hl7": (  # noqa: E501
        "PID[1]",
        NO_ORDER,
    ),
    f"{LFH}/Hl7IdentifierFHIRConversionTest__diagnosticReportIdentifierTest.hl7": (
        "OBX[1]-3",
        NO_OBX3,
    ),
    f"{LFH}/Hl7IdentifierFHIRConversionTest__diagnosticReportIdentifierTestFillerPlacerFromOBR.hl7": (  # noqa: E501
        "OBX[1]-3",
        NO_OBX3,
    ),
    f"{LFH}/Hl7MessageTest__test_messageHeader_with_ORU.hl7": ("PID[1]", NO_ORDER),
    f"{LFH}/Hl7MessageTest__test_specimen.hl7": (
        "PID[1]",
        "OBX and SPM directly after PV1, without an OBR: no ORDER_OBSERVATION",
    ),
    f"{LFH}/Hl7MessageTest__test_specimen_multiple.hl7": (
        "PID[1]",
        "OBX and SPM directly after PV1, without an OBR: no ORDER_OBSERVATION",
    ),
    f"{LFH}/Hl7MessageTest__test_specimen_multiple_type_coding.hl7": (
        "PID[1]",
        "OBX and SPM directly after PV1, without an OBR: no ORDER_OBSERVATION",
    ),
    f"{LFH}/Hl7ObservationFHIRConversionTest__extendedObservationTestMostMessages__MSH_HL7Soup_Instance1_MCM_Instance2_200911021022_Security_ORU_R01_2_6_2_6_.hl7": (  # noqa: E501
        "MSH-10",
        "MSH-10 (message control id, required) is empty; the message is also only "
        "MSH + one OBX (no PID, no OBR)",
    ),
    f"{LFH}/Hl7ObservationFHIRConversionTest__extendedObservationUnusualRangesAndOtherTest.hl7": (
        "PID[1]-3",
        "PID has no identifier at all (PID-3 empty): no patient to attach the results to",
    ),
    f"{LFH}/Hl7PatientFHIRConversionTest__test_patient_additional_demographics__MSH_hl7Integration_hl7Integration_ORU_R01_2_6_.hl7": (  # noqa: E501
        "MSH-10",
        "MSH-10 (message control id, required) is empty; no OBR either",
    ),
    f"{LFH}/Hl7PatientFHIRConversionTest__verify_data_lineage_ORU.hl7": ("PID[1]", NO_ORDER),
    f"{LFH}/Hl7PatientFHIRConversionTest__verify_data_lineage_milliseconds_timestamp.hl7": (
        "PID[1]",
        NO_ORDER,
    ),
    f"{LFH}/resources__ORU-multiline-short-mixed.hl7": ("OBX[2]-3", NO_OBX3),
    f"{LFH}/resources__ORU-multiline-short.hl7": ("OBX[1]-3", NO_OBX3),
    f"{CDC}/results/003_AL_ORU_R01_NBS_Normal_And_Abnormal_Results_0_initial_message.hl7": (
        "OBX[5]",
        "OBX[4]-OBX[8] repeat OBX-3 57719-7 with the same OBX-4 '^4^1' under one "
        'OBR: v2.5.1 requires OBX-4 to tell them apart ("to uniquely identify each '
        'OBX segment for editing or replacement"), so a correction could not be '
        "matched to these results",
    ),
    f"{CDC}/results/004_AL_ORU_R01_NBS_Specimen_Unsatisfactory_0_initial_message.hl7": (
        "OBX[5]",
        "as 003_AL: OBX[4]-OBX[8] repeat OBX-3 57719-7 with the same OBX-4",
    ),
    f"{CDC}/results/005_AL_ORU_R01_NBS_Simplified_0_initial_message.hl7": (
        "segment 1",
        "an FHS/BHS batch: the reader takes one message per document (the batch "
        "is unwrapped below for the comparison); inside, OBR 3-5 repeat placer, "
        "filler and OBR-4 54089-8, which the LRI rule (filler number + OBR-4 "
        "identify an order) forbids",
    ),
}


# -- the comparison with the peers' expected output --------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """A difference from a peer that is explained: the peer is wrong or differs by design."""

    file: str  # the input file name (no folder)
    field: str  # a compared field, or "presence"
    codes: frozenset[str] | None  # the OBX-3 codes concerned; None: every OBX of the file ...
    peer_absent: bool  # ... where the peer gives nothing (only with codes=None)
    reason: str

    def explains(self, file: str, difference: Difference) -> bool:
        if file != self.file or difference.field != self.field:
            return False
        if self.codes is not None:
            return difference.code in self.codes
        return self.peer_absent and difference.peer_absent


def known(file: str, field: str, codes: str | None, reason: str) -> Known:
    """``codes``: OBX-3 codes separated by spaces, or None for "every OBX where the peer
    gives nothing for this field"."""
    return Known(file, field, frozenset(codes.split()) if codes else None, codes is None, reason)


UCUM_ADDED = (
    "OBX-6 has no coding system: ucum.yaml gives the UCUM code of the unit as "
    "written; the peer gives no code for an uncoded unit"
)
UCUM_DROPPED = (
    "OBX-6 is coded UCUM ('g^gram^UCUM'): we give system + code as the "
    "v2-to-FHIR CWE->Quantity map does; the peer leaves Quantity.code out and keeps "
    "OBX-6 in a ReportStream extension"
)
STATUS_I_O = (
    "OBX-11 {code} ({meaning}): ours 'registered' (FHIR: the observation exists, no "
    "result yet), the peer 'unknown' (v2-to-FHIR leaves {code} unmapped): both valid"
)
RANGE_BOUNDS = (
    "OBX-7 '<1000' / '8-100': we give the bounds (and keep the text); the peer "
    "keeps only referenceRange.text"
)
CDC_ESCAPES = (
    "TX value with \\.br\\ and \\R\\: the peer keeps the HL7 escape sequences as "
    "literal text (a peer defect); we unescape them (line breaks, '~')"
)
CDC_TM = (
    "TM value '0000': this mapping does not read TM (a located warning names it, no "
    "value); the peer writes valueTime '0000', which is not a FHIR time (hh:mm:ss)"
)

KNOWN_DIFFERENCES: list[Known] = [
    # Microsoft FHIR-Converter
    known(
        "LAB-ORU-1.hl7",
        "status",
        "11156-7 20509-6",
        STATUS_I_O.format(code="I", meaning="specimen in lab, results pending"),
    ),
    known("LAB-ORU-1.hl7", "ucum", None, UCUM_ADDED + " ('%')"),
    known("LAB-ORU-2.hl7", "ucum", None, UCUM_ADDED + " ('%')"),
    known("ORU-R01-RMGEAD.hl7", "ucum", None, UCUM_ADDED + " ('mg/dl' -> 'mg/dL')"),
    known(
        "ORU-R01-01.hl7",
        "presence",
        "625-4 8867-4",
        "the message is quarantined (not an ORU_R01 structure): no Observation is made",
    ),
    # CDC trusted-intermediary (ReportStream)
    known(
        "003_AL_ORU_R01_NBS_Normal_And_Abnormal_Results_0_initial_message.hl7",
        "presence",
        "57719-7",
        "OBX[5]-OBX[8] repeat OBX-3 and OBX-4 of OBX[4]: not made, quarantined",
    ),
    known(
        "003_AL_ORU_R01_NBS_Normal_And_Abnormal_Results_0_initial_message.hl7",
        "ucum",
        None,
        UCUM_DROPPED,
    ),
    known(
        "004_AL_ORU_R01_NBS_Specimen_Unsatisfactory_0_initial_message.hl7",
        "presence",
        "57719-7",
        "OBX[5]-OBX[8] repeat OBX-3 and OBX-4 of OBX[4]: not made, quarantined",
    ),
    known(
        "004_AL_ORU_R01_NBS_Specimen_Unsatisfactory_0_initial_message.hl7",
        "ucum",
        None,
        UCUM_DROPPED,
    ),
    known(
        "003_LA_ORU_R01_NBS_obr_flatten_0_initial_message.hl7",
        "status",
        "8339-4 57721-3 57723-9 57714-8 62326-4",
        STATUS_I_O.format(code="O", meaning="order detail description only, no result"),
    ),
    known("003_LA_ORU_R01_NBS_obr_flatten_0_initial_message.hl7", "ucum", None, UCUM_DROPPED),
    known("005_CA_ORU_R01_CDPH_generated_0_initial_message.hl7", "value", "57724-7", CDC_ESCAPES),
    known("005_CA_ORU_R01_CDPH_generated_0_initial_message.hl7", "value", "57715-5", CDC_TM),
    known(
        "005_CA_ORU_R01_CDPH_generated_0_initial_message.hl7",
        "ucum",
        None,
        UCUM_ADDED + " ('µmol/L' -> 'umol/L', 'ng/mL', 'nmol/L')",
    ),
    known("005_CA_ORU_R01_CDPH_generated_0_initial_message.hl7", "low", None, RANGE_BOUNDS),
    known("005_CA_ORU_R01_CDPH_generated_0_initial_message.hl7", "high", None, RANGE_BOUNDS),
    known(
        "020_CA_ORU_R01_CDPH_OBX_to_LOINC_0_initial_message.hl7", "value", "57724-7", CDC_ESCAPES
    ),
    known(
        "020_CA_ORU_R01_CDPH_OBX_to_LOINC_0_initial_message.hl7",
        "ucum",
        None,
        UCUM_ADDED + " ('µmol/L' -> 'umol/L', 'ng/mL', 'nmol/L')",
    ),
    known("020_CA_ORU_R01_CDPH_OBX_to_LOINC_0_initial_message.hl7", "low", None, RANGE_BOUNDS),
    known("020_CA_ORU_R01_CDPH_OBX_to_LOINC_0_initial_message.hl7", "high", None, RANGE_BOUNDS),
]


@dataclass(frozen=True, slots=True)
class Pair:
    input: str  # below fixtures/peer
    expected: str  # the peer's output for it
    unwrap: bool = False  # an FHS/BHS batch: compare the message inside it

    @property
    def name(self) -> str:
        return Path(self.input).name


def _pairs() -> list[Pair]:
    out: list[Pair] = []
    for path in INPUTS:
        if path.startswith(MICROSOFT):
            out.append(Pair(path, path.removesuffix(".hl7") + "-expected.json"))
        elif path.startswith(CDC):
            expected = path.replace("_0_initial_message.hl7", "_1_hl7_translation.fhir")
            out.append(Pair(path, expected, unwrap="005_AL_" in path))
    return out


PAIRS = _pairs()


# -- helpers ---------------------------------------------------------------------------------


def translate(translator: Translator, raw: bytes) -> tuple[list[dict[str, Any]], list[Issue], bool]:
    outcome = translator.translate(raw, SOURCE)
    return outcome.resources, outcome.issues, outcome.failed


def unicode_spaces_as_space(value: Any) -> Any:
    """A copy in which non-ASCII white space (NO-BREAK SPACE, IDEOGRAPHIC SPACE ...) is a
    plain space. tests/fhir_checks runs the R4 schema's string pattern ``[ \\r\\n\\t\\S]+``
    with Python's Unicode ``\\S``, which refuses those characters; the pattern is XML Schema
    flavoured (there ``\\s`` is only space, tab, CR, LF) and FHIR strings refuse only
    characters below U+0020. CDC 020_CA has a NO-BREAK SPACE in a result text."""
    if isinstance(value, str):
        return "".join(" " if c.isspace() and ord(c) >= 0x80 else c for c in value)
    if isinstance(value, list):
        return [unicode_spaces_as_space(v) for v in value]
    if isinstance(value, dict):
        return {k: unicode_spaces_as_space(v) for k, v in value.items()}
    return value


def unwrap_batch(raw: bytes) -> bytes:
    """The one message inside an FHS/BHS ... BTS/FTS batch (the adapter reads single messages)."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"\r".join(
        line for line in lines if line.strip() and line[:3] not in (b"FHS", b"BHS", b"BTS", b"FTS")
    )


def _names_obx(issue: Issue, occurrence: int) -> bool:
    where = issue.location or ""
    prefix = f"OBX[{occurrence}]"
    return (
        issue.severity in ("error", "fatal", "warning")
        and where.startswith(prefix)
        and where[len(prefix) : len(prefix) + 1] in ("", "-")
    )


def unaccounted_obx(raw: bytes, resources: list[dict[str, Any]], issues: list[Issue]) -> list[str]:
    """OBX that became no Observation and that no issue names, per OBX-3 code: for each code,
    the Observations with that code plus the OBX with that code that an issue names must
    cover every OBX with that code."""
    message = parse_hl7v2(raw)
    made: dict[str, int] = {}
    for resource in resources:
        if resource["resourceType"] == "Observation":
            made[key_code(resource)] = made.get(key_code(resource), 0) + 1
    by_code: dict[str, list[int]] = {}
    for segment in message.segments_named("OBX"):
        code = segment.get(3, 1, 1).strip() or segment.get(3, 1, 4).strip()
        by_code.setdefault(code, []).append(segment.occurrence)
    out: list[str] = []
    for code, occurrences in by_code.items():
        named = [k for k in occurrences if any(_names_obx(i, k) for i in issues)]
        if made.get(code, 0) + len(named) < len(occurrences):
            out.append(
                f"OBX-3 {code or '(empty)'}: {len(occurrences)} OBX "
                f"({', '.join(f'OBX[{k}]' for k in occurrences)}), "
                f"{made.get(code, 0)} Observations, issues name {len(named)}"
            )
    return out


def compare_pair(translator: Translator, pair: Pair) -> Comparison:
    raw = (PEER / pair.input).read_bytes()
    resources, _, _ = translate(translator, unwrap_batch(raw) if pair.unwrap else raw)
    ours = [r for r in resources if r["resourceType"] == "Observation"]
    return compare_observations(ours, load_bundle_observations(PEER / pair.expected))


# -- the tests -------------------------------------------------------------------------------


def test_the_manifest_lists_every_peer_oru_input() -> None:
    on_disk = {
        p.relative_to(PEER).as_posix()
        for p in PEER.rglob("*.hl7")
        if "negative" not in p.parts and "referral" not in p.parts
    }
    assert set(INPUTS) == on_disk
    assert len(INPUTS) == 45  # 5 Microsoft + 34 LinuxForHealth + 6 CDC
    for path in INPUTS:
        assert b"ORU^R01" in (PEER / path).read_bytes(), f"{path} is not an ORU^R01"


def test_every_expected_quarantine_is_a_manifest_input() -> None:
    assert set(EXPECTED_QUARANTINE) <= set(INPUTS)


@pytest.mark.parametrize("path", INPUTS, ids=[Path(p).name for p in INPUTS])
def test_peer_message_translates_or_is_quarantined_for_cause(
    translator: Translator, path: str
) -> None:
    raw = (PEER / path).read_bytes()
    resources, issues, failed = translate(translator, raw)  # no exception is the first check
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if path in EXPECTED_QUARANTINE:
        where, reason = EXPECTED_QUARANTINE[path]
        assert failed, f"{path} was expected to be quarantined ({reason})"
        assert all(i.location for i in errors), (
            f"errors without a location: {[i.as_dict() for i in errors if not i.location]}"
        )
        assert any(i.location.startswith(where) for i in errors if i.location), (
            f"no error at {where}: {[i.as_dict() for i in errors]}"
        )
    else:
        assert not failed, f"{path} quarantined: {[i.as_dict() for i in errors]}"
    problems = [
        f"{r['resourceType']}/{r['id']}: {p}"
        for r in resources
        for p in validate_r4(unicode_spaces_as_space(r))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", INPUTS, ids=[Path(p).name for p in INPUTS])
def test_every_obx_is_accounted_for(translator: Translator, path: str) -> None:
    raw = (PEER / path).read_bytes()
    resources, issues, failed = translate(translator, raw)
    try:
        parse_hl7v2(raw)
    except MessageError:  # refused by the reader as a whole: its located error covers every OBX
        assert failed and path in EXPECTED_QUARANTINE
        return
    missing = unaccounted_obx(raw, resources, issues)
    assert not missing, "\n".join([path, *missing])


@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_observations_agree_with_the_peer(translator: Translator, pair: Pair) -> None:
    result = compare_pair(translator, pair)
    assert result.compared > 0 or any(
        k.file == pair.name and k.field == "presence" for k in KNOWN_DIFFERENCES
    ), "nothing compared"
    explained = [k for k in KNOWN_DIFFERENCES if k.file == pair.name]
    unexplained = [
        d for d in result.differences if not any(k.explains(pair.name, d) for k in explained)
    ]
    unused = [k for k in explained if not any(k.explains(pair.name, d) for d in result.differences)]
    report = [
        f"{pair.name}: {result.compared} Observations compared, {result.agreements} fields agree"
    ]
    report += [f"  not explained: {d}" for d in unexplained]
    report += [
        f"  listed in KNOWN_DIFFERENCES but no longer differs: {k.field} {k.codes}" for k in unused
    ]
    assert not unexplained and not unused, "\n".join(report)


def test_every_known_difference_names_a_compared_file() -> None:
    names = {p.name for p in PAIRS}
    assert {k.file for k in KNOWN_DIFFERENCES} <= names


# -- LinuxForHealth: resource counts -----------------------------------------------------------

EXPECTATIONS: list[dict[str, Any]] = json.loads(
    (PEER / LFH / "expectations.json").read_text(encoding="utf-8")
)
# The resource types this mapping makes from an ORU, so the peer's count means the same thing.
# Not compared: ServiceRequest, Practitioner, PractitionerRole, Encounter (not made from lab
# results by design, see oru_r01.yaml) and Organization (ours is the sending lab from the
# consortium file; the peer's is PV1's service provider).
COUNTED = ("Patient", "DiagnosticReport", "Observation", "Specimen")
COUNT_CASES = [
    e
    for e in EXPECTATIONS
    if any(t in e["asserted_resource_counts"] for t in COUNTED)
    and e["assertions_shared_by_n_messages_in_method"] == 1
]


@pytest.mark.parametrize("case", COUNT_CASES, ids=[c["fixture"] for c in COUNT_CASES])
def test_linuxforhealth_resource_counts(translator: Translator, case: dict[str, Any]) -> None:
    path = f"{LFH}/{case['fixture']}"
    resources, _, failed = translate(translator, (PEER / path).read_bytes())
    if path in EXPECTED_QUARANTINE:
        assert failed  # nothing is stored; why is in EXPECTED_QUARANTINE
        return
    ours = {t: sum(1 for r in resources if r["resourceType"] == t) for t in COUNTED}
    wanted = {t: n for t, n in case["asserted_resource_counts"].items() if t in COUNTED}
    assert {t: ours[t] for t in wanted} == wanted
