"""The hardened XML parser: hostile documents are refused with a location, encodings are
honoured or detected, text is never mangled."""

from __future__ import annotations

import codecs

import pytest

from adapter.errors import InputTooLargeError, ParseError
from adapter.xmlsafe import parse_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""


def refused(raw: bytes, **kwargs: int) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_xml(raw, **kwargs)
    return info.value


def test_billion_laughs_is_refused_at_the_first_entity_declaration() -> None:
    error = refused(BILLION_LAUGHS)
    assert "entities" in error.message
    assert error.location == "line 3, column 2"
    assert error.outcome()["issue"][0]["code"] == "structure"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "http://127.0.0.1:9/evil"])
def test_external_entity_is_refused_and_never_fetched(target: str) -> None:
    raw = (
        f'<?xml version="1.0"?>\n<!DOCTYPE foo [\n<!ELEMENT foo ANY>\n'
        f'<!ENTITY xxe SYSTEM "{target}">]>\n<foo>&xxe;</foo>'
    ).encode()
    error = refused(raw)
    assert "entities" in error.message
    assert error.location == "line 4, column 1"
    assert "root:" not in error.message  # nothing of /etc/passwd was read


def test_parameter_entity_inside_a_comment_trick_is_refused() -> None:
    # a "]" hidden in a comment must not end the search for declarations early
    raw = b'<!DOCTYPE a [ <!-- ] --> <!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p; ]><a/>'
    assert "entities" in refused(raw).message


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/x.dtd">',
        '<!DOCTYPE foo PUBLIC "-//X//DTD X//EN" "file:///etc/passwd">',
    ],
)
def test_external_dtd_is_refused(doctype: str) -> None:
    raw = f'<?xml version="1.0"?>\n<!-- sent by a HIS -->\n{doctype}\n<foo/>'.encode()
    error = refused(raw)
    assert "external DTD" in error.message
    assert error.location == "line 3, column 1"


def test_plain_doctype_without_declarations_is_read() -> None:
    document = parse_xml(b"<!DOCTYPE a><a>x</a>")
    assert document.root.text == "x"


def test_undeclared_entity_is_a_parse_error_with_line_and_column() -> None:
    error = refused(b"<a>\n  <b>&nbsp;</b>\n</a>")
    assert "nbsp" in error.message
    assert error.location is not None and error.location.startswith("line 2, column")


def test_malformed_document_names_line_and_column() -> None:
    error = refused(b'<?xml version="1.0"?>\n<a>\n  <b></a>')
    assert error.message.startswith("the document is not well-formed XML")
    assert error.location is not None and error.location.startswith("line 3, column")


def test_too_deep_nesting_is_refused() -> None:
    raw = b"<a>" * 300 + b"x" + b"</a>" * 300
    error = refused(raw)
    assert "depth" in error.message.lower()


def test_oversize_document_is_refused_before_parsing() -> None:
    raw = b"<a>" + b"x" * 2000 + b"</a>"
    with pytest.raises(InputTooLargeError) as info:
        parse_xml(raw, max_bytes=1000)
    assert "2007 bytes" in info.value.message and "1000" in info.value.message
    assert info.value.outcome()["issue"][0]["code"] == "too-long"
    assert parse_xml(raw, max_bytes=5000).root.text == "x" * 2000


def test_empty_input_is_a_parse_error() -> None:
    assert "empty" in refused(b"  \n").message


# -- encodings -----------------------------------------------------------------------------


def test_gbk_declared_document_with_chinese_element_names() -> None:
    text = (
        '<?xml version="1.0" encoding="GBK"?>\n'
        '<患者信息><患者姓名>张三</患者姓名><性别 代码="1">男</性别></患者信息>'
    )
    document = parse_xml(text.encode("gbk"))
    assert document.encoding == "gb18030" and document.declared_encoding == "GBK"
    assert document.root.tag == "患者信息"
    assert document.root.findtext("患者姓名") == "张三"
    assert document.root.find("性别").get("代码") == "1"
    assert document.issues == []


def test_gb2312_declared_document_keeps_characters_outside_gb2312() -> None:
    # 镕 and 䶮 are not in GB2312; senders that declare GB2312 send them anyway (GBK/GB18030)
    raw = '<?xml version="1.0" encoding="gb2312"?><a>朱镕基 刘䶮</a>'.encode("gb18030")
    assert parse_xml(raw).root.text == "朱镕基 刘䶮"


def test_gb18030_declared_document() -> None:
    raw = "<?xml version='1.0' encoding='GB18030'?><a>𠀀李</a>".encode("gb18030")
    assert parse_xml(raw).root.text == "𠀀李"


def test_utf16_with_bom_in_both_byte_orders() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?>\n<患者 姓名="王五">张三</患者>'
    for encoded in (text.encode("utf-16"), codecs.BOM_UTF16_BE + text.encode("utf-16-be")):
        document = parse_xml(encoded)
        assert document.root.text == "张三" and document.root.get("姓名") == "王五"
        assert document.encoding == "utf-16"
        assert document.issues == []


def test_utf16_without_bom_is_recognised_by_its_byte_pattern() -> None:
    raw = '<?xml version="1.0" encoding="UTF-16"?><a>张三</a>'.encode("utf-16-le")
    assert parse_xml(raw).root.text == "张三"


def test_bom_that_contradicts_the_declaration_wins_with_a_warning() -> None:
    raw = codecs.BOM_UTF8 + '<?xml version="1.0" encoding="GBK"?><a>张三</a>'.encode()
    document = parse_xml(raw)
    assert document.root.text == "张三"
    assert [i.severity for i in document.issues] == ["warning"]


def test_utf8_bom_and_declaration() -> None:
    raw = codecs.BOM_UTF8 + '<?xml version="1.0" encoding="utf-8"?><a>李四</a>'.encode()
    document = parse_xml(raw)
    assert document.root.text == "李四" and document.encoding == "utf-8"


def test_undeclared_utf8_is_read_as_utf8_without_issue() -> None:
    document = parse_xml("<a>张三</a>".encode())
    assert document.root.text == "张三" and document.encoding == "utf-8"
    assert document.issues == []


def test_undeclared_gb18030_is_detected_and_reported() -> None:
    document = parse_xml('<?xml version="1.0"?>\n<a>张三</a>'.encode("gb18030"))
    assert document.root.text == "张三" and document.encoding == "gb18030"
    assert [(i.severity, i.location) for i in document.issues] == [("warning", "line 1")]


def test_declared_utf8_with_gbk_bytes_is_refused_not_mangled() -> None:
    raw = '<?xml version="1.0" encoding="UTF-8"?>\n<a>\n张三</a>'.encode("gbk")
    error = refused(raw)
    assert "UTF-8" in error.message and error.location == "line 3"


def test_declared_gbk_with_utf8_bytes_is_read_as_declared_with_a_warning() -> None:
    raw = '<?xml version="1.0" encoding="GBK"?><a>张三</a>'.encode()
    document = parse_xml(raw)
    assert [i.severity for i in document.issues] == ["warning"]
    assert "declaration" in document.issues[0].diagnostics


def test_unknown_declared_encoding_is_refused() -> None:
    assert "unknown encoding" in refused(b'<?xml version="1.0" encoding="klingon"?><a/>').message
    assert "unknown encoding" in refused(b'<?xml version="1.0" encoding="base64"?><a/>').message


def test_declared_utf16_on_single_byte_text_is_refused() -> None:
    assert "UTF-16" in refused(b'<?xml version="1.0" encoding="UTF-16"?><a/>').message
