"""Small DataFrames built from rows the driver holds: run-log rows, quality measures, fitted states.

``spark.createDataFrame(rows, schema)`` on a classic session ships the rows through an RDD that
a Python worker re-serializes: about half a second per call, for one row, on every run-log,
quality-history or registry append. :func:`local_dataframe` gives the same rows and types from
one JSON literal parsed by Spark itself (``from_json``), so no Python worker starts. Under Spark
Connect, ``createDataFrame`` already sends local rows as an Arrow batch and is used as is.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Iterable, Mapping
from typing import Any

from featuremill.core.session import is_connect

_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
_TIMESTAMP_NTZ_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"


def local_dataframe(spark, rows: Iterable[Any], schema):
    """A DataFrame of ``rows`` with ``schema`` (a ``StructType`` or a DDL string).

    Each row is a tuple in the schema's field order, a mapping by field name, or a ``Row``. Values
    follow ``createDataFrame``'s conventions: a naive ``datetime`` in a ``timestamp`` column is
    the Python process's local time, an aware one its own instant. Every value is checked against
    its column's type first (``TypeError``/``ValueError`` naming the field), and Spark parses in
    ``FAILFAST`` mode, so no value becomes null on the way. Meant for a few rows (the driver
    holds them all).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, StructType, _make_type_verifier, _parse_datatype_string

    struct = _parse_datatype_string(schema) if isinstance(schema, str) else schema
    if not isinstance(struct, StructType):
        raise TypeError(f"local_dataframe needs a struct schema, got {struct.simpleString()}")
    tuples = [_as_tuple(struct, row) for row in rows]
    verifiers = [(f.name, _make_type_verifier(f.dataType, f.nullable, name=f.name)) for f in struct.fields]
    for row in tuples:
        for (name, verify), value in zip(verifiers, row):
            try:
                verify(value)
            except (TypeError, ValueError) as exc:
                # Spark 3.5's messages name the type and the value, not the field
                if f"field {name}" in str(exc):
                    raise
                raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"field {name}: {exc}") from exc
    if is_connect(spark):
        return spark.createDataFrame(tuples, struct)
    text = json.dumps([_encode(struct, row) for row in tuples], separators=(",", ":"), allow_nan=True)
    options = {
        "mode": "FAILFAST",
        "timestampFormat": _TIMESTAMP_FORMAT,
        "timestampNTZFormat": _TIMESTAMP_NTZ_FORMAT,
        "dateFormat": "yyyy-MM-dd",
        "allowNonNumericNumbers": "true",
    }
    parsed = F.from_json(F.lit(text), ArrayType(struct), options)
    return (
        spark.range(1, numPartitions=1).select(F.inline(parsed)).select(*[F.col(f"`{f.name}`") for f in struct.fields])
    )


def _as_tuple(struct, row: Any) -> tuple:
    if isinstance(row, Mapping):
        return tuple(row.get(f.name) for f in struct.fields)
    if hasattr(row, "asDict"):
        return tuple(row.asDict().get(f.name) for f in struct.fields)
    values = tuple(row)
    if len(values) != len(struct.fields):
        raise ValueError(f"a row of {len(values)} values for {len(struct.fields)} columns ({struct.simpleString()})")
    return values


def _encode(data_type, value: Any) -> Any:
    """``value`` as the JSON value ``from_json`` reads back into ``data_type`` exactly."""
    from pyspark.sql import types as T

    if value is None:
        return None
    if isinstance(data_type, T.StructType):
        values = _as_tuple(data_type, value)
        return {f.name: _encode(f.dataType, v) for f, v in zip(data_type.fields, values)}
    if isinstance(data_type, T.ArrayType):
        return [_encode(data_type.elementType, v) for v in value]
    if isinstance(data_type, T.MapType):
        if not isinstance(data_type.keyType, T.StringType):
            raise TypeError(f"local_dataframe: map keys must be strings, not {data_type.keyType.simpleString()}")
        return {k: _encode(data_type.valueType, v) for k, v in value.items()}
    if isinstance(data_type, T.TimestampNTZType):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(data_type, T.TimestampType):
        # naive = the process's local time, as createDataFrame reads it; written with its offset
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(data_type, T.DateType):
        return value.isoformat()
    if isinstance(data_type, T.DecimalType):
        return str(decimal.Decimal(value))
    if isinstance(data_type, T.BinaryType):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return float(value)
    return value
