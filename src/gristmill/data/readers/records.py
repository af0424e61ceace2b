"""From a parsed record to a :class:`Document`: ids (given, or stable ones for records without), the text
field (or the text extracted from an HTML field), the rest as metadata, and rejection with ``input:<rule>`` for
a record that cannot be a document.

Every format's reader builds its documents here, so ids and rejections read the same whatever the input.
"""

from __future__ import annotations

import json

import xxhash

from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers.html import HtmlExtractor, html_problem


def stable_id(path: str, line: int) -> str:
    """The id of a document that has none: a hash of its source file and record number."""
    return xxhash.xxh64_hexdigest(f"{path}:{line}".encode())


def rejected_document(spec_path: str, line: int, rule: str, raw: str, detail: str) -> Document:
    """A document for an unusable record, rejected with ``input:<rule>`` and a detail naming file and line."""
    doc = Document(id=stable_id(spec_path, line), text=raw[:1_000_000], meta={"source_file": spec_path, "source_line": line})
    doc.reject("input", rule, f"{spec_path}:{line}: {detail}")
    return doc


def normalize_id(raw: object) -> str | None:
    """A document id as a string: strings as they are, integers (and integral floats) in decimal.

    None (use a stable id) for a missing, empty or NaN id. Raises ``ValueError`` for ids that are not
    names at all (booleans, lists, objects), so that ``12``, ``12.0`` and ``"12"`` are the same id everywhere.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"id {raw!r} is a boolean")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if raw != raw:
            return None
        return str(int(raw)) if raw.is_integer() else repr(raw)
    raise ValueError(f"id {json.dumps(raw)[:60]} is not a string or a number")


def record_to_document(
    record: object, path: str, line: int, spec: InputSpec, extract_html: HtmlExtractor | None = None
) -> Document:
    """Validate one parsed record; a record that is not a usable document comes back rejected."""
    if not isinstance(record, dict):
        return rejected_document(path, line, "invalid_json", json.dumps(record)[:1000], "record is not a JSON object")
    try:
        doc_id = normalize_id(record.get(spec.id_field)) or stable_id(path, line)
    except ValueError as exc:
        return rejected_document(path, line, "invalid_id", json.dumps(record, ensure_ascii=False)[:1_000_000], str(exc))
    if spec.html_field:
        html = record.get(spec.html_field)
        if not isinstance(html, str):
            return rejected_document(path, line, "missing_text", "", f"field {spec.html_field!r} is missing or not a string")
        if extract_html and (problem := html_problem(html)):
            return rejected_document(path, line, "html_too_deep", "", problem)
        text = extract_html(html) if extract_html else html
    else:
        text = record.get(spec.text_field)
    meta = {k: v for k, v in record.items() if k not in (spec.id_field, spec.text_field, spec.html_field)}
    if not isinstance(text, str):
        doc = Document(doc_id, "", meta)
        doc.reject("input", "missing_text", f"{path}:{line}: field {spec.text_field!r} is missing or not a string")
        return doc
    doc = Document(doc_id, text, meta)
    if not text.strip():
        doc.reject("input", "empty_text", f"{path}:{line}: the text is empty")
    return doc
