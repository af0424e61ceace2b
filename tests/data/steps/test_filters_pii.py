"""pii: typed placeholders, Luhn-checked cards, counts, reject mode."""

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import StepStats
from gristmill.data.steps.pii import PII, luhn_valid


@pytest.mark.parametrize("text, expected", [
    ("Mail jane.doe+list@example.co.uk today.", "Mail <EMAIL> today."),
    ("Call +49 30 1234567 or +1-555-555-0123.", "Call <PHONE> or <PHONE>."),
    ("US office: (555) 555-0143, fax 555-555-0199.", "US office: <PHONE>, fax <PHONE>."),
    ("UK: +44 20 7946 0709.", "UK: <PHONE>."),
    ("Gateway 192.168.0.1; backup 10.0.0.254.", "Gateway <IP_ADDRESS>; backup <IP_ADDRESS>."),
    ("IPv6 2001:db8::8a2e:370:7334 and fe80::1 here.", "IPv6 <IP_ADDRESS> and <IP_ADDRESS> here."),
    ("Card 4532 0151 1283 0366 expires soon.", "Card <CREDIT_CARD> expires soon."),
    ("Card 4532-0151-1283-0366 and 4532015112830366.", "Card <CREDIT_CARD> and <CREDIT_CARD>."),
])
def test_redaction(text, expected):
    assert PII().redact(text) == expected


@pytest.mark.parametrize("text", [
    "Card 4532 0151 1283 0367 fails the Luhn check.",
    "Not an address: 999.300.1.1 or 1.2.3 or 256.1.1.1.",
    "C++ scopes like std::vector and times like 12:30:45 stay.",
    "ISBN 978-0-596-00492-7 and zeros 0000000000000000 stay.",
    "Plain numbers 1234567 and +5 degrees stay.",
    "No at sign, no digits here at all.",
])
def test_things_that_are_not_pii_stay(text):
    assert PII().redact(text) == text


def test_luhn():
    assert luhn_valid("4532015112830366") and luhn_valid("5202626596862596")
    assert not luhn_valid("4532015112830367")
    assert not luhn_valid("12345")  # too short for a card


def test_counts_and_types():
    docs = [Document("a", "write to a@b.org or c@d.org, server 10.1.2.3"), Document("b", "nothing here")]
    stats = StepStats()
    out = PII().process(docs, stats)
    assert out == docs
    assert docs[0].text == "write to <EMAIL> or <EMAIL>, server <IP_ADDRESS>"
    assert stats.counters["pii_email"] == 2 and stats.counters["pii_ip"] == 1 and stats.counters["docs_redacted"] == 1
    only_email = PII(types=["email"])
    assert only_email.redact("a@b.org 10.1.2.3") == "<EMAIL> 10.1.2.3"


def test_reject_mode():
    docs = [Document("a", "call +1-555-555-0123"), Document("b", "clean")]
    PII(mode="reject").process(docs, StepStats())
    assert docs[0].reason == "pii:phone" and not docs[1].rejected


def test_bad_parameters():
    with pytest.raises(ValueError):
        PII(types=["passport"])
    with pytest.raises(ValueError):
        PII(mode="mask")


def test_adversarial():
    pii = PII()
    assert pii.redact("") == ""
    digits = "1" * 100_000
    assert pii.redact(digits) == digits
    assert pii.redact("@" * 1000 + ":" * 1000) == "@" * 1000 + ":" * 1000
