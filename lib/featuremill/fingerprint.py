"""Content fingerprints of DataFrames, computed inside an aggregate the job runs anyway.

``rows=<n>;xxhash64=<sum>``: the row count and the sum (as a 30-digit decimal, so no overflow) of
``xxhash64`` over every column of every row. It does not depend on row order, partitioning or the
table's storage version: rewriting identical rows gives the same fingerprint, changing any value
of any row (almost surely) does not. Map columns cannot be hashed by Spark and are left out.
"""

from __future__ import annotations

from featuremill.sql import col


def content_hash_aggregate(df, alias: str = "__fm_content_hash"):
    """An aggregate column for ``df.agg(...)``: the order-independent sum of row hashes."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    hashable = [col(f.name) for f in df.schema.fields if not _has_map(f.dataType, MapType)]
    row_hash = F.xxhash64(*hashable) if hashable else F.lit(0)
    return F.sum(row_hash.cast("decimal(20,0)")).alias(alias)


def _has_map(data_type, map_type) -> bool:
    from pyspark.sql.types import ArrayType, StructType

    if isinstance(data_type, map_type):
        return True
    if isinstance(data_type, ArrayType):
        return _has_map(data_type.elementType, map_type)
    if isinstance(data_type, StructType):
        return any(_has_map(f.dataType, map_type) for f in data_type.fields)
    return False


def content_fingerprint(rows: int, hash_sum) -> str:
    return f"rows={int(rows)};xxhash64={int(hash_sum or 0)}"
