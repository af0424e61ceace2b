"""Principle 2: no record can stop a run. Every record the JSON parser or a writer would choke on becomes
a rejected row (``input:<rule>``, file and line) and the run goes on; ids are strings everywhere and
repeated ids are counted. A hypothesis fuzz test throws arbitrary lines at the reader and the writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gristmill.data import storage
from gristmill.data.inputs import InputSpec
from gristmill.data.readers import read_shard
from gristmill.data.readers.output import read_documents
from gristmill.data.readers.records import normalize_id
from gristmill.data.shards import Shard
from gristmill.data.writers import write_documents
from tests.data.hostile import GOOD, invoke, write_recipe

DEEP = "[" * 2000 + "]" * 2000  # the 4 KB line
BAD_LINES = {
    # line: expected reason
    '{"id": "s1", "text": "lone \\ud800 surrogate"}': "input:invalid_unicode",
    '{"id": "s2\\udfff", "text": "' + GOOD + '"}': "input:invalid_unicode",
    '{"id": "s3", "text": "' + GOOD + '", "meta": {"k": ["\\udc00"]}}': "input:invalid_unicode",
    '{"id": "s4", "text": "' + GOOD + '", "\\ud83d": 1}': "input:invalid_unicode",
    '{"id": "d1", "text": "' + GOOD + '", "m": ' + DEEP + '}': "input:too_deep",
    '{"id": "d2", "text": "' + GOOD + '", "m": ' + "[" * 150 + "]" * 150 + '}': "input:too_deep",
    '{"id": "d3", "text": "' + GOOD + '", "m": ' + '{"a":' * 300 + "1" + "}" * 300 + '}': "input:too_deep",
    '{"id": "i1", "text": "' + GOOD + '", "n": 18446744073709551616}': "input:int_out_of_range",
    '{"id": "i2", "text": "' + GOOD + '", "n": -9223372036854775809}': "input:int_out_of_range",
    '{"id": "i3", "text": "' + GOOD + '", "n": [1, {"x": 99999999999999999999999}]}': "input:int_out_of_range",
    '{"id": "i4", "text": "' + GOOD + '", "n": ' + "9" * 5000 + '}': "input:int_out_of_range",
    '{"id": "f1", "text": "' + GOOD + '", ' + ", ".join(f'"k{i}": {i}' for i in range(1500)) + '}': "input:too_many_fields",
    '{"id": "f2", "text": "' + GOOD + '", "m": [' + ", ".join(f'{{"k{i}": 1}}' for i in range(1200)) + ']}':
        "input:too_many_fields",
    '{"id": true, "text": "' + GOOD + '"}': "input:invalid_id",
    '{"id": ["a"], "text": "' + GOOD + '"}': "input:invalid_id",
    '{"id": {"x": 1}, "text": "' + GOOD + '"}': "input:invalid_id",
}
GOOD_LINES = [
    '{"id": "p1", "text": "emoji pair \\ud83d\\ude00 is fine: ' + GOOD + '"}',
    '{"id": "n1", "text": "a long number 12345678901234567890123 in the text: ' + GOOD + '"}',
    '{"id": "n2", "text": "' + GOOD + '", "n": 9223372036854775807, "m": -9223372036854775808}',
    '{"id": "e1", "text": "' + GOOD + '", "m": {}, "l": [], "ll": [[]], "le": [{}]}',
    '{"id": "x1", "text": "' + GOOD + '", "mixed": [1, "a", null, {"b": 2}]}',
    '{"id": "d0", "text": "' + GOOD + '", "m": ' + "[" * 90 + "]" * 90 + '}',
    '{"id": NaN, "text": "' + GOOD + ' nan id"}',
]


def _run(tmp_path: Path, files: list[Path], fmt: str = "parquet") -> tuple[int, str, Path]:
    out = tmp_path / f"out-{fmt}"
    recipe = write_recipe(tmp_path / f"r-{fmt}.yaml", [str(f) for f in files], out,
                          steps="  - length: {min_chars: 20}\n")
    recipe.write_text(recipe.read_text().replace(f"path: '{out}'", f"path: '{out}', format: {fmt}"))
    code, output = invoke("run", recipe, "--no-progress")
    return code, output, out


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_bad_records_are_rejected_rows_and_the_run_goes_on(tmp_path: Path, fmt: str) -> None:
    lines = list(BAD_LINES) + GOOD_LINES
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output, out = _run(tmp_path, [src], fmt)
    assert code == 3, output  # bad data: exit 3, not 2 (a user error) and not a traceback
    rejected = {d.detail.split(":")[1]: d.reason for d in read_documents(out / "rejected")}
    kept = {d.id for d in read_documents(out / "kept")}
    expected = {str(i): reason for i, reason in enumerate(BAD_LINES.values(), start=1)}
    assert rejected == expected
    assert len(kept) == len(GOOD_LINES)
    assert {"p1", "n1", "n2", "e1", "x1", "d0"} <= kept
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["docs_in"] == len(lines) == stats["totals"]["kept"] + stats["totals"]["rejected"]
    for doc in read_documents(out / "rejected"):
        assert doc.detail.startswith(f"{src}:")  # file and line


def test_ids_are_strings_and_repeats_across_files_are_counted(tmp_path: Path) -> None:
    """id 12 and "12" collided silently; now they are one id by design, and the run says so."""
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps({"id": i, "text": f"{GOOD} a{i}"}) for i in (12, 13, 14)) + "\n")
    b.write_text("\n".join(json.dumps({"id": i, "text": f"{GOOD} b{i}"}) for i in ("12", 13.0, "15")) + "\n")
    code, output, out = _run(tmp_path, [a, b])
    assert code == 0, output
    assert "2 input documents have an id that another input document already has" in " ".join(output.split())
    ids = sorted(d.id for d in read_documents(out / "kept"))
    assert ids == ["12", "12", "13", "13", "14", "15"]
    assert json.loads((out / "stats.json").read_text())["input"]["repeated_ids"] == 2


def test_many_different_keys_across_records_stay_a_bounded_number_of_columns(tmp_path: Path) -> None:
    """Each metadata key is a column: 200 records with 20 keys of their own would make 4,000 columns."""
    import pyarrow.parquet as pq

    from gristmill.data.document import Document
    from gristmill.data.writers import MAX_COLUMNS

    docs = [Document(f"d{j}", GOOD, {f"k{j}_{i}": i for i in range(20)}) for j in range(200)]
    write_documents(docs, tmp_path / "wide.parquet")
    assert len(pq.read_schema(tmp_path / "wide.parquet").names) <= MAX_COLUMNS + 3
    back = {d.id: d for d in read_documents(tmp_path / "wide.parquet")}
    folded = back["d199"].meta.get("more_meta") or back["d0"].meta.get("more_meta")
    assert len(back) == 200 and folded and len(json.loads(folded)) == 20


def test_normalize_id() -> None:
    assert normalize_id(12) == normalize_id("12") == normalize_id(12.0) == "12"
    assert normalize_id(2**70) == str(2**70) and normalize_id(1.5) == "1.5"
    assert normalize_id(None) is normalize_id("") is normalize_id(float("nan")) is None
    for bad in (True, [1], {"a": 1}):
        with pytest.raises(ValueError):
            normalize_id(bad)


def test_parquet_ids_are_normalised_like_jsonl(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [12.0, float("nan"), 7.0], "text": [GOOD, GOOD + " 2", GOOD + " 3"]}), path)
    docs = list(read_shard(Shard(str(path), "parquet", 0, 0, 3), InputSpec(paths=[str(path)])))
    assert [d.id for d in docs][::2] == ["12", "7"] and len(docs[1].id) == 16  # NaN: the stable id of the row


# ---------------------------------------------------------------- fuzz: whatever the bytes, one document per line

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                      st.floats(allow_nan=True), st.text(max_size=20))
JSON_VALUE = st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids,
                                                                                               max_size=4), max_leaves=20)
SURROGATE = st.integers(min_value=0xD800, max_value=0xDFFF).map(lambda c: f"\\u{c:04x}")


def _record_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "value", "escape", "bytes", "deep"]))
    if kind == "record":
        record = draw(st.dictionaries(st.sampled_from(["id", "text", "meta", "n", ""]), JSON_VALUE, max_size=5))
        return json.dumps(record).encode()
    if kind == "value":
        return json.dumps(draw(JSON_VALUE)).encode()
    if kind == "escape":
        field = draw(st.sampled_from(["id", "text", "meta"]))
        return f'{{"id": "e", "text": "x{draw(SURROGATE)}y", "{field}": "{draw(SURROGATE)}"}}'.encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=50, max_value=3000))
        return b'{"text": "t", "m": ' + b"[" * depth + b"]" * depth + b"}"
    return draw(st.binary(max_size=60)).replace(b"\n", b" ").replace(b"\r", b" ")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.composite(_record_line)(), min_size=1, max_size=12))
def test_fuzz_jsonl_reader_and_writers_never_raise(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs = list(read_shard(Shard(str(path), "jsonl", 0), InputSpec(paths=[str(path)])))
    assert len(docs) == sum(1 for line in lines if line.strip())  # one document per non-blank line: nothing lost
    assert all(isinstance(d.id, str) and isinstance(d.text, str) for d in docs)
    for fmt in ("parquet", "jsonl"):
        target = tmp_path / f"out.{fmt}"
        write_documents(docs, target, fmt)
        assert len(list(read_documents(target))) == len(docs)
    storage.remove(tmp_path / "out.parquet")
