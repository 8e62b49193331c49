"""The content fingerprint: one order-independent hash of a DataFrame's rows, computed by Spark.

Every content comparison in featuremill uses this one definition: the training-set manifest
(``storage.manifest.frame_fingerprints``), fitted preprocessing states and selections
(``data_fingerprint``), the dimension identity in a feature run's input fingerprint
(``pipelines.build_features.content_identity``), replay's check that a replay reproduces the run
it replays, and the benchmark's result check.

``xxh64sum:<sum>``: the sum (as ``decimal(38,0)``, so no overflow) over every row of ``xxhash64``
over every column *and a null marker per column*, columns in the frame's order. Before hashing,
values are normalised to what Spark SQL considers equal:

* Spark's hash skips nulls, so without the markers ``(null, 1)`` and ``(1, null)`` would hash
  alike; nested nulls are marked the same way (inside structs, arrays and maps);
* ``-0.0`` hashes as ``0.0`` and every NaN as the one NaN (``-0.0 = 0.0`` and ``NaN = NaN`` in
  Spark SQL), at any depth;
* maps, which Spark cannot hash, at any depth (a top-level map, a map in a struct, in an array,
  in another map's values), hash as their entries sorted by key, so two maps with the same
  entries hash alike whatever order they were built in.

The fingerprint does not depend on row order, partitioning or the table's storage version:
rewriting identical rows gives the same fingerprint; changing any value of any row (almost
surely) does not. Repeated rows count (a sum, not an XOR). The row count is kept apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

PREFIX = "xxh64sum:"


def _normalised(column, data_type):
    """``column`` rewritten so that values equal in Spark SQL hash alike and maps become hashable."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, MapType, StructType

    if isinstance(data_type, (DoubleType, FloatType)):
        # -0.0 -> 0.0 (NaN stays NaN: its comparison with 0 is false; its bits are canonical in xxhash64)
        return F.when(column == F.lit(0), F.lit(0).cast(data_type)).otherwise(column)
    if isinstance(data_type, StructType):
        if not data_type.fields:
            return column
        fields = []
        for f in data_type.fields:
            fields += [_normalised(column.getField(f.name), f.dataType).alias(f.name), column.getField(f.name).isNull()]
        # a null struct stays null (its marker is the parent's), a struct's null fields are marked
        return F.when(column.isNull(), F.lit(None)).otherwise(F.struct(*fields))
    if isinstance(data_type, ArrayType):
        element = data_type.elementType
        return F.transform(column, lambda x: F.struct(_normalised(x, element).alias("v"), x.isNull().alias("n")))
    if isinstance(data_type, MapType):
        value_type = data_type.valueType
        entries = F.map_entries(
            F.transform_values(
                column, lambda _k, v: F.struct(_normalised(v, value_type).alias("v"), v.isNull().alias("n"))
            )
        )
        return F.array_sort(entries)
    return column


def row_hash(df, columns: Sequence[str] | None = None):
    """A column: ``xxhash64`` of one row of ``df`` over ``columns`` (default all), normalised as
    the module docstring says."""
    from pyspark.sql import functions as F

    from featuremill.core.sql import col

    types = {f.name: f.dataType for f in df.schema.fields}
    parts = []
    for name in list(columns) if columns is not None else df.columns:
        parts += [_normalised(col(name), types[name]), col(name).isNull()]
    return F.xxhash64(*parts) if parts else F.lit(0).cast("bigint")


def content_hash_aggregate(df, alias: str = "__fm_content_hash", columns: Sequence[str] | None = None):
    """An aggregate column for ``df.agg(...)``: the order-independent sum of row hashes of ``df``."""
    from pyspark.sql import functions as F

    return F.sum(row_hash(df, columns).cast("decimal(38,0)")).alias(alias)


def content_fingerprint(hash_sum) -> str:
    """The fingerprint text for the value :func:`content_hash_aggregate` returned."""
    return f"{PREFIX}{int(hash_sum or 0)}"


def frame_fingerprints(df, groups: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, str]]:
    """``{group: (rows, fingerprint)}`` of several column subsets of ``df``, in one pass (one
    small aggregate reaches the driver)."""
    from pyspark.sql import functions as F

    names = list(groups)
    row = df.agg(
        F.count(F.lit(1)).alias("n"),
        *[content_hash_aggregate(df, f"s{i}", list(groups[g])) for i, g in enumerate(names)],
    ).first()
    return {g: (int(row["n"]), content_fingerprint(row[f"s{i}"])) for i, g in enumerate(names)}


def frame_fingerprint(df, columns: Sequence[str] | None = None) -> tuple[int, str]:
    """``(rows, fingerprint)`` of ``df`` over ``columns`` (default all)."""
    return frame_fingerprints(df, {"all": list(columns) if columns is not None else df.columns})["all"]
