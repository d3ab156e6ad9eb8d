"""landing.enrichment: the visitor's IP behind proxies, its place, its anonymised form."""

import pytest

from landing.enrichment import Place, anonymize_ip, client_ip, locate


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "95.123.45.67"}, "203.0.113.9"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "95.123.45.67"}, "95.123.45.67"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": " 1.2.3.4 , 95.123.45.67 ,127.0.0.1"}, "95.123.45.67"),
        ({"REMOTE_ADDR": "::1", "HTTP_X_FORWARDED_FOR": "2001:DB8::1"}, "2001:db8::1"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "95.123.45.67, not-an-ip"}, "127.0.0.1"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, "127.0.0.1"),
        ({"REMOTE_ADDR": "127.0.0.1"}, "127.0.0.1"),
        ({"REMOTE_ADDR": "garbage", "HTTP_X_FORWARDED_FOR": "95.123.45.67"}, None),
        ({}, None),
    ],
)
def test_client_ip(meta, expected):
    assert client_ip(meta) == expected


def test_locate_reads_country_and_city_and_knows_when_it_does_not_know():
    assert locate("95.123.45.67") == Place(country="ES", city="Sant Pere de Ribes")
    assert locate("10.0.0.1") == Place()  # private: not in the database
    assert locate("not-an-ip") == Place()
    assert locate(None) == Place()


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("95.123.45.67", "95.123.45.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::"),
        ("::ffff:1.2.3.4", "::"),
    ],
)
def test_truncation(ip, expected):
    assert anonymize_ip(ip, "truncate") == expected
    assert anonymize_ip(ip, "none") == ip
