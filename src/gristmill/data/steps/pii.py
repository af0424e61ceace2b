"""Personal data: e-mail addresses, phone numbers, IP addresses and payment card numbers.

The ``pii`` step replaces each match with a typed placeholder (``<EMAIL>``, ``<PHONE>``,
``<IP_ADDRESS>``, ``<CREDIT_CARD>``) and counts replacements per type (``pii_email``, ...), or,
with ``mode: reject``, rejects the document (``pii:email``) at its first match.

Patterns are regular expressions with validation where a checksum or a grammar exists: card
numbers (13-19 digits, optionally grouped by spaces or hyphens) must pass the Luhn check, IPv4
octets must be at most 255, IPv6 candidates must parse with :mod:`ipaddress`. Phone numbers are
recognised in international form (``+49 30 1234567``, ``+1-555-555-0123``) and in the North
American form with an area code (``(555) 555-0123``, ``555-555-0123``); national numbers without
a country code in other formats are not, because they cannot be told from other digit groups.
IPv4 addresses are redacted whatever their range: private and documentation addresses in text
about someone's network are as personal as public ones. Version numbers that look like dotted
quads (``1.2.3.4``) are redacted too; that is the price of catching addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gristmill.data.document import Document
from gristmill.data.pipeline import Step, StepStats, register

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "credit_card": "<CREDIT_CARD>"}

# A word character of an alphabetic script marks the edge of a match; Han characters and kana do not,
# because Chinese and Japanese write numbers and addresses right next to them (电话13800138000).
_W = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
EMAIL_RE = re.compile(rf"(?<![.+-])(?<!{_W})(?:{_W}|[.+-])+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
                      r"\.[A-Za-z]{2,}\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_RE = re.compile(rf"(?<![.])(?<!{_W}){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!{_W})")
IPV6_RE = re.compile(rf"(?<![:.])(?<!{_W})(?:[0-9A-Fa-f]{{1,4}}:){{1,7}}(?::|(?::[0-9A-Fa-f]{{1,4}}){{1,7}}|[0-9A-Fa-f]{{1,4}})(?!{_W}|:)"
                     rf"|(?<![:])(?<!{_W})::(?:[0-9A-Fa-f]{{1,4}}:){{0,6}}[0-9A-Fa-f]{{1,4}}(?!{_W}|:)")
# Card numbers never start with 0 (industry identifier 0 is not issued) and are printed either
# without separators or in the 4-4-4-4(-3) or Amex 4-6-5 grouping.
CARD_RE = re.compile(rf"(?<![./-])(?<!{_W})[1-9](?:\d{{12,18}}|\d{{3}}([ -])\d{{4}}\1\d{{4}}\1\d{{1,4}}(?:\1\d{{1,3}})?"
                     rf"|\d{{3}}([ -])\d{{6}}\2\d{{5}})(?!{_W}|/|[.-]\d)")
# International (+cc ...), North American, and Chinese mobile numbers (1[3-9]x xxxx xxxx, optionally +86).
PHONE_RE = re.compile(
    rf"(?<![+])(?<!{_W})\+\d{{1,3}}(?:[ .-]\(?\d{{1,8}}\)?){{1,6}}(?!{_W}|-)"
    rf"|(?<![(.-])(?<!{_W})(?:\(\d{{3}}\) ?\d{{3}}-\d{{4}}|\d{{3}}-\d{{3}}-\d{{4}}|\d{{3}}\.\d{{3}}\.\d{{4}})(?!{_W}|-|\.\d)"
    rf"|(?<![+.-])(?<!{_W})1[3-9]\d(?:\d{{8}}|-\d{{4}}-\d{{4}}| \d{{4}} \d{{4}})(?!{_W}|-|\.\d)"
)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _ipv6_ok(match: str) -> bool:
    # Two groups at least, so C++ scopes (``std::vector``) and times (``12:30``) never qualify.
    if sum(1 for g in match.split(":") if g) < 2:
        return False
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    return True


def _phone_ok(match: str) -> bool:
    return 8 <= sum(c.isdigit() for c in match) <= 15


# Order matters: cards before phones (a grouped card number also looks like a phone number),
# e-mail before IP (an address can hold a dotted quad).
DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("email", EMAIL_RE, None),
    ("credit_card", CARD_RE, luhn_valid),
    ("ip", IPV6_RE, _ipv6_ok),
    ("ip", IPV4_RE, None),
    ("phone", PHONE_RE, _phone_ok),
]
TYPES = ("email", "phone", "ip", "credit_card")
_DIGIT_RE = re.compile(r"\d")


@register("pii")
@dataclass
class PII(Step):
    """Redacts (or, with ``mode: reject``, rejects documents with) e-mail addresses, phone numbers,
    IPv4/IPv6 addresses and Luhn-valid card numbers; counts ``pii_<type>``."""

    types: list[str] = field(default_factory=lambda: list(TYPES))
    mode: str = "redact"

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown PII types {unknown}; known: {', '.join(TYPES)}")
        if self.mode not in ("redact", "reject"):
            raise ValueError(f"mode must be redact or reject, got {self.mode!r}")
        self._detectors = [d for d in DETECTORS if d[0] in self.types]

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """(type, start, end) of every match, earlier detectors winning overlaps."""
        spans: list[tuple[str, int, int]] = []
        has_digit = _DIGIT_RE.search(text) is not None
        for kind, pattern, valid in self._detectors:
            # Cheap tests first: most documents hold no "@", and many no digit or colon.
            if (kind == "email" and "@" not in text) or (pattern is IPV6_RE and ":" not in text):
                continue
            if kind != "email" and pattern is not IPV6_RE and not has_digit:
                continue
            for m in pattern.finditer(text):
                start, end = m.span()
                if valid is not None and not valid(m.group()):
                    continue
                if any(s < end and start < e for _, s, e in spans):
                    continue
                spans.append((kind, start, end))
        return sorted(spans, key=lambda s: s[1])

    def redact(self, text: str, counts: dict[str, int] | None = None) -> str:
        spans = self.find(text)
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for kind, start, end in spans:
            out.append(text[pos:start])
            out.append(PLACEHOLDERS[kind])
            pos = end
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
        out.append(text[pos:])
        return "".join(out)

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            if self.mode == "reject":
                spans = self.find(doc.text)
                if spans:
                    stats.count(f"pii_{spans[0][0]}")
                    doc.reject(self.name, spans[0][0], f"{len(spans)} PII matches")
                continue
            counts: dict[str, int] = {}
            new = self.redact(doc.text, counts)
            if counts:
                doc.text = new
                stats.count("docs_redacted")
                for kind, n in counts.items():
                    stats.count(f"pii_{kind}", n)
        return docs
