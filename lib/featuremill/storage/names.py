"""Table references: a path (local path or URI) or a metastore name, and what a name resolves to.

An environment with ``tables: {schema: S}`` (``{catalog: C, schema: S}`` for Unity Catalog)
names the pipeline's Delta tables ``[C.]S.<table>`` instead of placing them under the warehouse
path (:meth:`featuremill.config.model.TablePaths.table`). Everything that reads or writes a
table takes either reference; this module is the one place that tells them apart.
"""

from __future__ import annotations

import re

from featuremill.core.sql import delta_path_identifier, quote_identifier

#: Where each named table's files are (``DESCRIBE DETAIL``), per name, until a write replaces it.
_LOCATIONS: dict[str, str] = {}

_NAME_PART = r"[A-Za-z0-9_]+|`[^`]+`"
_TABLE_NAME_RE = re.compile(rf"^(?:{_NAME_PART})(?:\.(?:{_NAME_PART})){{1,2}}$")


def is_table_name(ref: str) -> bool:
    """``True`` when ``ref`` names a metastore table (``schema.table`` or ``catalog.schema.table``,
    parts of letters, digits and ``_`` or backquoted), ``False`` for a path or URI.

    Paths featuremill writes are absolute (``/...``) or URIs (``s3://...``), so a reference without
    ``/`` and without a scheme, made of two or three dotted parts, is a name.
    """
    text = str(ref)
    return "/" not in text and "\\" not in text and ":" not in text and bool(_TABLE_NAME_RE.match(text))


def name_parts(name: str) -> list[str]:
    """The parts of a table name, backquotes removed."""
    return [p[1:-1] if p.startswith("`") else p for p in re.findall(_NAME_PART, name)]


def table_identifier(ref: str) -> str:
    """The SQL identifier of a table reference: ```schema`.`table``` for a name,
    ``delta.`/path``` for a path."""
    if is_table_name(ref):
        return ".".join(quote_identifier(p) for p in name_parts(ref))
    return delta_path_identifier(ref)


def table_location(spark, ref: str) -> str:
    """Where the files of the table ``ref`` are: ``ref`` itself for a path, the metastore's
    location (``DESCRIBE DETAIL``) for a name, remembered per name until a write replaces it."""
    if not is_table_name(ref):
        return ref
    if ref not in _LOCATIONS:
        row = spark.sql(f"DESCRIBE DETAIL {table_identifier(ref)}").select("location").first()
        _LOCATIONS[ref] = str(row["location"])
    return _LOCATIONS[ref]


def forget_location(ref: str) -> None:
    """Drop the remembered location of ``ref`` (a write may create or replace the table)."""
    _LOCATIONS.pop(ref, None)


def existing_location(spark, ref: str) -> str | None:
    """:func:`table_location` of ``ref``, or ``None`` when ``ref`` names no table."""
    if not is_table_name(ref):
        return ref
    try:
        if not spark.catalog.tableExists(ref):
            return None
    except Exception:  # no such catalog or schema
        return None
    return table_location(spark, ref)
