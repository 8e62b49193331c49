"""Content fingerprints of training data, computed inside an aggregate the fit or selection runs anyway.

``xxh64sum:<sum>``: the sum (as ``decimal(38,0)``, so no overflow) over every row of ``xxhash64``
over every column *and a null marker per column*. Spark's hash skips nulls, so without the
markers ``(null, 1)`` and ``(1, null)`` would hash alike. Map columns are hashed through their
JSON text (Spark cannot hash maps). The fingerprint does not depend on row order, partitioning or
the table's storage version: rewriting identical rows gives the same fingerprint; changing any
value of any row (almost surely) does not. Repeated rows count (a sum, not an XOR).

This is the same definition as the training-set manifest's ``frame_fingerprint`` (issue 4), so a
fitted state's ``data_fingerprint`` can be compared with a manifest's ``output.fingerprint``.
The row count is kept apart (``FittedState.row_count``).
"""

from __future__ import annotations

PREFIX = "xxh64sum:"


def content_hash_aggregate(df, alias: str = "__fm_content_hash"):
    """An aggregate column for ``df.agg(...)``: the order-independent sum of row hashes of ``df``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    from featuremill.core.sql import col

    parts = []
    for f in df.schema.fields:
        value = F.to_json(col(f.name)) if _has_map(f.dataType, MapType) else col(f.name)
        parts += [value, col(f.name).isNull()]
    row_hash = F.xxhash64(*parts) if parts else F.lit(0).cast("bigint")
    return F.sum(row_hash.cast("decimal(38,0)")).alias(alias)


def _has_map(data_type, map_type) -> bool:
    from pyspark.sql.types import ArrayType, StructType

    if isinstance(data_type, map_type):
        return True
    if isinstance(data_type, ArrayType):
        return _has_map(data_type.elementType, map_type)
    if isinstance(data_type, StructType):
        return any(_has_map(f.dataType, map_type) for f in data_type.fields)
    return False


def content_fingerprint(hash_sum) -> str:
    """The fingerprint text for the value :func:`content_hash_aggregate` returned."""
    return f"{PREFIX}{int(hash_sum or 0)}"
