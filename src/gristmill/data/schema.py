"""One schema per output folder, so ``OUT/kept`` and ``OUT/rejected`` each load as one table.

Shard writers see only their own documents: a metadata field that no document of a shard carried is
missing from that file (``lang_foreign_share``), and a field that was null everywhere in a shard is
written as strings. Readers that expect one schema per folder (``datasets.load_dataset``, Spark,
DuckDB with strict unions) then fail. :func:`harmonize` runs once at the end of a run: it reads only
the Parquet footers, works out the folder's schema (every column any file has, in the writers' column
order, typed by the files where the column holds values) and rewrites only the files that differ.
JSONL folders need nothing (a missing key is a null there).
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

import gristmill.data.storage as storage
from gristmill.data.readers.output import output_files

TAIL = ("reason", "detail")


def _all_null(metadata: pq.FileMetaData, index: int) -> bool:
    """Whether column ``index`` holds only nulls, from the footer's statistics (no data read)."""
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        stats = group.column(index).statistics
        if stats is None or not stats.has_null_count or stats.null_count != group.num_rows:
            return False
    return True


def folder_schema(files: list[str]) -> pa.Schema | None:
    """The union schema of ``files`` (Parquet); None when there is nothing to unify."""
    seen: dict[str, dict[str, pa.DataType]] = {}
    counted: dict[str, Counter] = {}
    for path in files:
        pf = storage.parquet_file(path)
        schema = pf.schema_arrow
        for i, name in enumerate(schema.names):
            kind = schema.field(i).type
            seen.setdefault(name, {}).setdefault(str(kind), kind)
            counted.setdefault(name, Counter())
            # A column that holds only nulls says nothing about its type (the writer made it a string).
            if not _all_null(pf.metadata, i):
                counted[name][str(kind)] += 1
    if not seen:
        return None
    head = [n for n in ("id", "text") if n in seen]
    order = head + sorted(n for n in seen if n not in (*head, *TAIL)) + [n for n in TAIL if n in seen]
    fields = []
    for name in order:
        best = counted[name].most_common(1)[0][0] if counted[name] else next(iter(seen[name]))
        fields.append(pa.field(name, seen[name][best]))
    return pa.schema(fields)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns: missing ones as nulls, all-null ones re-typed."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                if column.null_count == len(column):
                    column = pa.nulls(len(column), field.type)
                else:
                    try:
                        column = column.cast(field.type)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        # Values of another type in one shard: keep them, as text, in every shard.
                        raise _Mixed(field.name) from None
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


class _Mixed(Exception):
    """A column holds values of different types in different files."""


def harmonize(folder: str) -> int:
    """Rewrite the Parquet files of ``folder`` that differ from its union schema; returns how many."""
    files = [f for f in output_files(folder) if f.endswith(".parquet")]
    schema = folder_schema(files)
    if schema is None:
        return 0
    rewritten = 0
    for _ in range(2):
        try:
            for path in files:
                if storage.parquet_file(path).schema_arrow.equals(schema):
                    continue
                table = conform(storage.parquet_file(path).read(), schema)
                storage.atomic_write(path, lambda f, t=table: pq.write_table(t, f, compression="zstd"))
                rewritten += 1
            return rewritten
        except _Mixed as exc:
            name = exc.args[0]
            schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
            _stringify(files, name)
    return rewritten


def _stringify(files: list[str], name: str) -> None:
    """Make column ``name`` text in every file that has it (JSON for non-strings), as the writer does for mixed types."""
    import json

    for path in files:
        table = storage.parquet_file(path).read()
        if name not in table.column_names or table.schema.field(name).type == pa.string():
            continue
        values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in table.column(name).to_pylist()]
        table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.string()))
        storage.atomic_write(path, lambda f, t=table: pq.write_table(t, f, compression="zstd"))
