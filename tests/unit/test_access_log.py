"""The access log's query masking: names stay, values go, harmless paging values stay."""

from __future__ import annotations

from urllib.parse import urlencode

from adapter.api.access_log import masked_query


def test_values_are_masked_and_names_kept() -> None:
    query = urlencode(
        {
            "name": "张伟",
            "birthdate": "1968-03-15",
            "identifier": "urn:oid:2.16.156.10011.1.3|430999196803151231",
            "family:exact": "欧阳",
            "_count": "20",
            "_sort": "-date",
            "status": "quarantined",
        }
    )
    assert masked_query(query) == (
        "name=***&birthdate=***&identifier=***&family:exact=***&_count=20&_sort=-date"
        "&status=quarantined"
    )


def test_odd_names_and_odd_harmless_values_are_masked_too() -> None:
    assert masked_query(urlencode({"张伟": "1"})) == "***=***"
    assert masked_query(urlencode({"_count": "1 OR 张伟"})) == "_count=***"
    assert masked_query("name") == "name=***"
    assert masked_query("") == ""
