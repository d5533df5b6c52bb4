"""Redaction of personal data in log records, and the one-line / JSON log formats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.errors import ConfigError
from adapter.logs import (
    ID_MASK,
    NAME_MASK,
    PHONE_MASK,
    RedactingFilter,
    configure_logging,
    redact,
)

ID18 = "110101199003071234"
ID18_X = "11010519491231002X"
ID15 = "110101900307123"
MOBILE = "13812345678"


@pytest.fixture
def logging_state() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    uvicorn = logging.getLogger("uvicorn.access")
    uvicorn_state = (list(uvicorn.handlers), uvicorn.propagate)
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)
    uvicorn.handlers[:], uvicorn.propagate = uvicorn_state


# ---- redact() on text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"patient {ID18} admitted", f"patient {ID_MASK} admitted"),
        (f"id={ID18_X};", f"id={ID_MASK};"),
        (f"id={ID18_X.lower()}", f"id={ID_MASK}"),
        (f"old card {ID15}", f"old card {ID_MASK}"),
        (f"PID-3 was ID{ID18}", f"PID-3 was ID{ID_MASK}"),
        (f"call {MOBILE} now", f"call {PHONE_MASK} now"),
        (f"call me.{MOBILE}.", f"call me.{PHONE_MASK}."),
        ("call +86 138-1234-5678", f"call {PHONE_MASK}"),
        ("call 008613812345678", f"call {PHONE_MASK}"),
        ("office 0571-87654321", f"office {PHONE_MASK}"),
        ("office 01087654321 or (010)8765432", f"office {PHONE_MASK} or {PHONE_MASK}"),
        (
            '{"family": "张", "given": ["三", "丰"]}',
            f'{{"family": "{NAME_MASK}", "given": "{NAME_MASK}"}}',
        ),
        ("{'family': '王'}", f"{{'family': \"{NAME_MASK}\"}}"),
        ("姓名：张三，性别：男", f"姓名：{NAME_MASK}，性别：男"),
        ("patient_name=Zhang San", f"patient_name={NAME_MASK} San"),
    ],
)
def test_redact_masks_personal_data(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "OBX[3]-5 glucose 6.1 mmol/L, range 3.9-6.1",
        "MSH-7 20261125134000 and 20261125134000.1234+0800",
        "took 12.5 ms for 27 resources, 1432 bytes",
        "fraction 0.0123456789",
        "value 65536.16395085712 and 13812345678.5",  # digits of decimals are not phones
        "run of 19 digits 1101011990030712345 is not an ID",
        "run of 12 digits 138123456789 is not a mobile",
        "order 202611251340001234",  # 18 digits, but no plausible birth date inside
        "destination name=county-hospital",
        "Patient/3f2a9c1e-5b7d-4e2a-9c3d-1a2b3c4d5e6f version 2",
    ],
)
def test_redact_leaves_ordinary_numbers_and_ids(text: str) -> None:
    assert redact(text) == text


def test_redact_masks_whole_pid_segment_up_to_segment_end() -> None:
    message = (
        "MSH|^~\\&|LIS|H1|ADAPTER|C|20261125134000||ORU^R01|M1|P|2.4\r"
        f"PID|1||P001^^^H1||张^三||19900307|M|||幸福路1号||{MOBILE}|||||{ID18}\r"
        "OBR|1||L1|GLU^血糖\r"
        "OBX|1|NM|GLU^血糖||6.1|mmol/L"
    )
    out = redact(message)
    assert "PID|[REDACTED]\rOBR|1||L1|GLU^血糖\r" in out
    assert out.startswith("MSH|^~\\&|LIS|H1|ADAPTER|C|20261125134000||ORU^R01|M1|P|2.4\r")
    assert out.endswith("OBX|1|NM|GLU^血糖||6.1|mmol/L")
    for secret in ("张", "幸福路", MOBILE, ID18, "19900307"):
        assert secret not in out


def test_redact_pid_segment_in_repr_and_other_person_segments() -> None:
    logged = repr(f"PID|1||P001||李^四\rNK1|1|李^五||{MOBILE}\rPV1|1|O")
    out = redact(logged)
    assert out == "'PID|[REDACTED]\\rNK1|[REDACTED]\\rPV1|1|O'"


def _full_width(text: str) -> str:
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else {"X": "Ｘ"}.get(c, c) for c in text)


def test_redact_masks_full_width_ids_and_mobiles() -> None:
    """Typed with a Chinese input method: the log line shows the mask, no digit of them."""
    text = f"身份证号 {_full_width(ID18_X)} 电话 {_full_width(MOBILE)} 第５组"
    assert redact(text) == f"身份证号 {ID_MASK} 电话 {PHONE_MASK} 第5组"


def test_redact_is_idempotent() -> None:
    text = f"PID|1||x\r{ID18} {MOBILE} 0571-87654321 姓名:张三"
    once = redact(text)
    assert redact(once) == once


# ---- real log records ------------------------------------------------------------------


def test_records_are_redacted_before_any_handler_sees_them(
    logging_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("INFO")
    log = logging.getLogger("adapter.test.ingest")
    with caplog.at_level(logging.INFO):
        log.info("patient %s phone %s glucose %s at %s", ID18, MOBILE, 6.1, "20261125134000")
    (record,) = caplog.records
    assert record.getMessage() == (
        f"patient {ID_MASK} phone {PHONE_MASK} glucose 6.1 at 20261125134000"
    )
    assert record.args == ()  # the original arguments are gone from the record
    assert ID18 not in caplog.text and MOBILE not in caplog.text


def test_exception_text_is_redacted(logging_state: None, caplog: pytest.LogCaptureFixture) -> None:
    configure_logging("INFO")
    log = logging.getLogger("adapter.test.errors")
    with caplog.at_level(logging.INFO):
        try:
            raise ValueError(f"bad PID-19 value {ID15}")
        except ValueError:
            log.exception("ingest failed")
    (record,) = caplog.records
    assert ID15 not in caplog.text
    assert record.exc_text is not None
    assert f"ValueError: bad PID-19 value {ID_MASK}" in record.exc_text


def test_extra_fields_are_redacted_by_the_handler(
    logging_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json=True)
    logging.getLogger("adapter.test.extra").info("callback", extra={"detail": f"tel {MOBILE}"})
    entry = json.loads(capsys.readouterr().err)
    assert entry["detail"] == f"tel {PHONE_MASK}"


def test_text_format_is_one_line_per_record(
    logging_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug")
    logging.getLogger("adapter.test.text").warning("raw:\rPID|1||%s\rOBX|1|NM||6.1", ID18)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1
    assert " WARNING adapter.test.text: raw:\\rPID|[REDACTED]\\rOBX|1|NM||6.1" in lines[0]
    assert ID18 not in err


def test_json_format(logging_state: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    logging.getLogger("adapter.test.json").info(
        "stored %d resources for %s", 27, ID18_X, extra={"message_id": 42}
    )
    logging.getLogger("adapter.test.json").debug("below the level, not printed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "adapter.test.json"
    assert entry["message"] == f"stored 27 resources for {ID_MASK}"
    assert entry["message_id"] == 42
    assert entry["time"].endswith("Z")


def test_configure_twice_does_not_duplicate_output(
    logging_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    logging.getLogger("adapter.test.twice").info("once")
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_uvicorn_loggers_go_through_the_root(logging_state: None) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.NullHandler())
    access.propagate = False
    configure_logging("INFO")
    assert access.handlers == [] and access.propagate is True


def test_unknown_level_is_a_config_error(logging_state: None) -> None:
    with pytest.raises(ConfigError, match="LOUD"):
        configure_logging("LOUD")


def test_filter_redacts_records_made_without_the_factory() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelno": logging.INFO, "msg": "phone %s", "args": (MOBILE,)}
    )
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == f"phone {PHONE_MASK}"


def test_bad_format_arguments_do_not_raise(logging_state: None) -> None:
    configure_logging("INFO")
    record = logging.getLogRecordFactory()(
        "x", logging.INFO, __file__, 1, "%d items for %s", ("many", ID18), None
    )
    assert ID18 not in record.getMessage()


# ---- properties --------------------------------------------------------------------------

_no_digits = st.text(
    alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="\r\n"),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    before=_no_digits,
    after=_no_digits,
    area=st.integers(110000, 659999),
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    seq=st.integers(0, 999),
    check=st.sampled_from("0123456789Xx"),
)
def test_any_national_id_between_non_digits_is_masked(
    before: str, after: str, area: int, birth: date, seq: int, check: str
) -> None:
    number = f"{area}{birth:%Y%m%d}{seq:03d}{check}"
    assert number not in redact(f"{before}{number}{after}")


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_lab_values_survive(value: float) -> None:
    text = f"OBX[1]-5 value {value} mmol/L at 20261125134000"
    assert redact(text) == text


def test_a_copy_error_s_input_line_is_masked() -> None:
    """PostgreSQL quotes the COPY line it failed on (index rows: names, IDs): masked."""
    from adapter.logs import redact

    text = (
        "privacy_probe: could not extend file\n"
        'COPY search_index, line 14: "Patient\te34\tfamily\tstring\t欧阳\t欧阳"\n'
        'COPY search_index, line 3, column value: "110101199003077777"\n'
        "[SQL: COPY search_index (resource_type) FROM STDIN]"
    )
    masked = redact(text)
    assert "欧阳" not in masked and "110101199003077777" not in masked
    assert "COPY search_index, line 14: [REDACTED-DB-VALUES]" in masked
    assert "[SQL: COPY search_index (resource_type) FROM STDIN]" in masked


# ---- the gated chain (decision 0107): the same text as every step run --------------------


def _full_chain(text: str) -> str:
    """redact() as it was before its steps were gated: every step on every text that
    passes the quick check (the reference the gated chain must equal)."""
    from adapter import logs
    from adapter.credentials import redact_credentials

    if not text or not logs._QUICK_CHECK_RE.search(text):
        return text
    text = redact_credentials(text)
    text = logs._DB_DETAIL_RE.sub(lambda m: f"{m.group(1)}{logs.DB_VALUES_MASK}", text)
    text = logs._DB_QUOTED_RE.sub(lambda m: f"{m.group(1)}{logs.DB_VALUES_MASK}", text)
    text = logs._DB_COPY_RE.sub(lambda m: f"{m.group(1)}{logs.DB_VALUES_MASK}", text)
    text = logs._SEGMENT_RE.sub(lambda m: f"{m.group(1)}|{logs.SEGMENT_MASK}", text)
    text = logs._HUMAN_NAME_RE.sub(lambda m: f'{m.group(1)}"{NAME_MASK}"', text)
    text = logs._NAME_LABEL_RE.sub(lambda m: f"{m.group(1)}{NAME_MASK}", text)
    text = text.translate(logs._FULL_WIDTH_DIGITS)
    text = logs._ID18_RE.sub(ID_MASK, text)
    text = logs._ID15_RE.sub(ID_MASK, text)
    text = logs._MOBILE_RE.sub(PHONE_MASK, text)
    return logs._LANDLINE_RE.sub(PHONE_MASK, text)


# pieces of what the chain looks for, and of what stands near it in real lines
_PIECES = [
    *"0123456789",
    "１",
    "３",
    "８",
    "X",
    " ",
    "-",
    ".",
    "|",
    ":",
    "=",
    '"',
    "'",
    "\n",
    "\\r",
    "(",
    ")",
    "[",
    "]",
    ",",
    "+86",
    "0086",
    "(010)",
    "0571-",
    "138",
    "1234",
    "5678",
    ID18,
    ID18_X,
    ID15,
    MOBILE,
    "138 1234 5678",
    "138-1234-5678",
    "0571-87654321",
    "PID|",
    "NK1|",
    "PID",
    "family",
    '"given": ["',
    "prefix",
    "姓名：",
    "patient_name=",
    "Name",
    "DETAIL:",
    "CONTEXT: ",
    "Duplicate entry ",
    "Incorrect string value: ",
    'invalid input syntax for type uuid: "',
    "COPY t, line 3: ",
    "Authorization: ",
    "Bearer ",
    "Basic ",
    "dXNlcjpwYXNz",
    "access_token=",
    "password",
    "x-api-key:",
    "2b34a12f-f3c8-414c-8c54-a75a9fb233ce",
    "message ",
    " resources",
    "张伟",
    "6.1",
]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_gated_chain_equals_the_full_chain(text: str) -> None:
    assert redact(text) == _full_chain(text)


@pytest.mark.parametrize(
    "secret",
    [ID18, ID18_X, ID15, MOBILE, "+86 138-1234-5678", "0571-87654321", "１３８１２３４５６７８"],
)
@pytest.mark.parametrize("position", range(5))
def test_the_stored_line_masks_personal_data_in_any_argument(
    logging_state: None, capsys: pytest.CaptureFixture[str], secret: str, position: int
) -> None:
    """steps.record_result's line, one argument at a time replaced by a national ID or a
    phone number (a caller's bug: ids and counts are what belongs there), printed."""
    configure_logging("INFO")
    args: list[object] = ["2b34a12f-f3c8-414c-8c54-a75a9fb233ce", "lis-a", 14, 12, 13]
    args[position] = secret
    logging.getLogger("adapter.pipeline.steps").info(
        "message %s from %s: %s resources (%s changed), %s outbox rows", *args
    )
    err = capsys.readouterr().err
    digits = secret.translate(str.maketrans("１２３４５６７８", "12345678"))
    assert "2b34a12f" in err or position == 0
    assert secret not in err and digits.replace(" ", "").replace("-", "") not in err
    assert ID_MASK in err or PHONE_MASK in err


@pytest.mark.parametrize(
    "name",
    ['{"family": "欧阳", "given": ["娜娜"]}', "姓名：欧阳娜娜", "patient_name=欧阳娜娜"],
)
def test_the_stored_line_masks_a_name_in_any_argument(
    logging_state: None, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    configure_logging("INFO")
    for position in range(2):
        args = ["2b34a12f-f3c8-414c-8c54-a75a9fb233ce", "lis-a"]
        args[position] = name
        logging.getLogger("adapter.pipeline.steps").info("message %s from %s: 3 resources", *args)
    err = capsys.readouterr().err
    assert "娜娜" not in err and err.count(NAME_MASK) >= 2


def test_a_record_redacted_at_creation_is_not_redacted_again_but_its_extras_are(
    logging_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The handler's filter after the record factory: the message is kept (one pass), an
    ``extra=`` field (added after the factory) and a message replaced since are redacted."""
    configure_logging("INFO", json=True)
    log = logging.getLogger("adapter.test")
    log.info("message %s", ID18, extra={"peer": f"caller {MOBILE}"})

    class Replace(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg = f"replaced {MOBILE}"
            return True

    replace = Replace()
    log.addFilter(replace)
    try:
        log.info("plain")
    finally:
        log.removeFilter(replace)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == f"message {ID_MASK}"
    assert lines[0]["peer"] == f"caller {PHONE_MASK}"
    assert lines[1]["message"] == f"replaced {PHONE_MASK}"
    assert all(not k.startswith("_") for line in lines for k in line)
