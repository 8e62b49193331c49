"""Column profiles of a table in two Spark passes, whatever the number of columns.

Pass 1 stacks every column into rows of (column, numeric value, text value) and aggregates by
column: row and null counts, NaN and infinite counts, approximate distinct count (HyperLogLog),
min, max, mean, sample standard deviation and quantiles (``percentile_approx`` with an array of
probabilities). Pass 2 stacks (kind, column, value) for the histograms of every numeric and
temporal column (equal-width buckets between the pass-1 min and max) and the values of every
categorical column, counts them in one ``groupBy`` and keeps the top values per column with a
window. Both passes run a fixed number of Spark jobs, so profiling 500 columns costs the same
number of jobs as profiling 5 (``tests/integration/test_quality_jobs.py``).

Column kinds: ``numeric`` (integers, floats, decimals), ``temporal`` (date, timestamp; min/max
and a histogram over epoch seconds), ``categorical`` (string, boolean; top values), ``other``
(counts only). Numeric columns with few distinct values also get top values. Columns that are
nearly unique (approximate distinct >= 90% of non-null values) get no top values: every value
would appear about once.

The profile is stored in ``<warehouse>/<pipeline>/profiles`` (one row per column) and written
as a JSON file and a self-contained HTML report (:mod:`featuremill.quality.report`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from featuremill.config import NUMERIC_TYPES
from featuremill.core.columns import user_columns
from featuremill.core.local_rows import local_dataframe
from featuremill.core.sql import col
from featuremill.quality.spec import ProfileSettings
from featuremill.quality.tables import stack

log = logging.getLogger(__name__)

PROFILES_SCHEMA = (
    "profile_id string, pipeline string, table_name string, selection string, table_version bigint, "
    "created_at timestamp, table_rows bigint, column_name string, data_type string, kind string, "
    "non_null bigint, nulls bigint, nan bigint, infinite bigint, distinct_approx bigint, min string, max string, "
    "mean double, stddev double, quantile_probs array<double>, quantiles array<double>, "
    "top_values array<struct<value:string,count:bigint>>, "
    "histogram array<struct<lo:double,hi:double,count:bigint>>, note string"
)
NEARLY_UNIQUE = 0.9


@dataclass
class ColumnProfile:
    """Everything profiled about one column (values of temporal min/max are ISO text)."""

    column: str
    data_type: str
    kind: str
    rows: int = 0
    non_null: int = 0
    nulls: int = 0
    nan: int = 0
    infinite: int = 0
    distinct_approx: int | None = None
    min: str | None = None
    max: str | None = None
    mean: float | None = None
    stddev: float | None = None
    quantile_probs: list[float] = field(default_factory=list)
    quantiles: list[float] = field(default_factory=list)
    top_values: list[tuple[str, int]] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)
    note: str = ""
    # numeric bounds of the histogram (epoch seconds for temporal columns)
    low: float | None = None
    high: float | None = None


@dataclass
class TableProfile:
    """A profile of one selection of one table."""

    profile_id: str
    pipeline: str
    table: str
    selection: str
    table_version: int | None
    created_at: str
    rows: int
    columns: list[ColumnProfile]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        for c in data["columns"]:
            c.pop("low", None)
            c.pop("high", None)
        return data


def column_kind(data_type: str) -> str:
    if data_type in NUMERIC_TYPES or data_type.startswith("decimal"):
        return "numeric"
    if data_type in ("date", "timestamp", "timestamp_ntz"):
        return "temporal"
    if data_type in ("string", "boolean"):
        return "categorical"
    return "other"


def _numeric_value(name: str, data_type: str):
    """Column as a finite double: NaN and infinities become null (counted separately)."""
    from pyspark.sql import functions as F

    c = col(name)
    kind = column_kind(data_type)
    if kind == "numeric":
        value = c.cast("double")
        if data_type in ("double", "float"):
            value = F.when(~F.isnan(c) & (F.abs(c) != F.lit(float("inf"))), value)
        return value
    if kind == "temporal":
        if data_type == "date":
            return F.unix_date(c).cast("double") * F.lit(86400.0)
        return F.unix_micros(c).cast("double") / F.lit(1e6)
    return F.lit(None).cast("double")


def profile_frame(
    df, *, columns: Sequence[str] | None = None, settings: ProfileSettings | None = None
) -> tuple[int, list[ColumnProfile]]:
    """Profile ``columns`` of ``df`` (all by default) in two passes; returns (rows, profiles).

    Input: any DataFrame. Output: one :class:`ColumnProfile` per column, in the given order.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    settings = settings or ProfileSettings()
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    names = list(columns) if columns else list(types)
    if not names:
        return int(df.count()), []
    profiles = {n: ColumnProfile(column=n, data_type=types[n], kind=column_kind(types[n])) for n in names}

    # Pass 1: one row per (input row, column), aggregated by column.
    entries = []
    for n in names:
        t = types[n]
        c = col(n)
        bad_nan = F.isnan(c) if t in ("double", "float") else F.lit(False)
        bad_inf = (F.abs(c) == F.lit(float("inf"))) if t in ("double", "float") else F.lit(False)
        # HyperLogLog over a 64-bit hash of the value: one type for every column, no text casts
        distinct_key = F.when(c.isNotNull(), F.xxhash64(c)) if profiles[n].kind != "other" else F.lit(None).cast("long")
        entries.append(
            {
                "c": F.lit(n),
                "is_null": c.isNull(),
                "is_nan": bad_nan,
                "is_inf": bad_inf,
                "num": _numeric_value(n, t),
                "key": distinct_key,
            }
        )
    stacked = stack(df, entries)
    probs = [float(q) for q in settings.quantiles]
    first = (
        stacked.groupBy("c")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count(F.when(F.col("is_null"), True)).alias("nulls"),
            F.count(F.when(F.col("is_nan"), True)).alias("nan"),
            F.count(F.when(F.col("is_inf"), True)).alias("inf"),
            F.approx_count_distinct("key").alias("distinct"),
            F.min("num").alias("min"),
            F.max("num").alias("max"),
            F.avg("num").alias("mean"),
            F.stddev_samp("num").alias("stddev"),
            F.percentile_approx("num", probs, settings.accuracy).alias("q"),
        )
        .collect()
    )
    rows = 0
    for r in first:
        p = profiles[r["c"]]
        rows = int(r["rows"])
        p.rows, p.nulls, p.nan, p.infinite = rows, int(r["nulls"]), int(r["nan"]), int(r["inf"])
        p.non_null = p.rows - p.nulls
        p.distinct_approx = int(r["distinct"]) if p.kind != "other" else None
        p.low, p.high = r["min"], r["max"]
        if p.kind == "numeric":
            p.min, p.max = _num_text(r["min"]), _num_text(r["max"])
            p.mean, p.stddev = _float(r["mean"]), _float(r["stddev"])
            if r["q"] is not None:
                p.quantile_probs, p.quantiles = probs, [float(v) for v in r["q"]]
        elif p.kind == "temporal":
            p.min, p.max = _time_text(r["min"], p.data_type), _time_text(r["max"], p.data_type)
    if not first:  # empty input: every column has zero rows
        return 0, [profiles[n] for n in names]

    # Pass 2: histograms (numeric, temporal) and top values (categorical, discrete numeric).
    bins = settings.histogram_bins
    entries = []
    for n in names:
        p = profiles[n]
        t = types[n]
        if p.kind in ("numeric", "temporal") and p.low is not None:
            width = (p.high - p.low) / bins if p.high > p.low else 0.0
            value = _numeric_value(n, t)
            if width > 0:
                # least() skips nulls, so guard them: a null value has no bucket
                bucket = F.when(
                    value.isNotNull(),
                    F.least(F.floor((value - F.lit(p.low)) / F.lit(width)), F.lit(bins - 1)).cast("int"),
                )
            else:
                bucket = F.when(value.isNotNull(), F.lit(0))
            entries.append({"k": F.lit("h"), "c": F.lit(n), "b": bucket.cast("int"), "v": F.lit(None).cast("string")})
        discrete = p.kind == "numeric" and (p.distinct_approx or 0) <= settings.discrete_max_distinct
        if p.kind == "categorical" or discrete:
            if p.non_null >= 20 and (p.distinct_approx or 0) >= NEARLY_UNIQUE * p.non_null:
                p.note = f"nearly unique (~{p.distinct_approx:,} distinct of {p.non_null:,}): top values skipped"
                continue
            entries.append({"k": F.lit("t"), "c": F.lit(n), "b": F.lit(None).cast("int"), "v": col(n).cast("string")})
    if entries:
        # bucket ids stay integers (cheap to hash); only top-value candidates are text
        second = stack(df, entries).where(F.col("v").isNotNull() | F.col("b").isNotNull())
        counted = second.groupBy("k", "c", "b", "v").count()
        rank = F.row_number().over(Window.partitionBy("k", "c").orderBy(F.col("count").desc(), F.col("v")))
        kept = counted.withColumn("rank", rank).where((F.col("k") == "h") | (F.col("rank") <= settings.top_values))
        buckets: dict[str, dict[int, int]] = {}
        for r in kept.collect():
            if r["k"] == "h":
                buckets.setdefault(r["c"], {})[int(r["b"])] = int(r["count"])
            else:
                profiles[r["c"]].top_values.append((r["v"], int(r["count"])))
        for n, counts in buckets.items():
            p = profiles[n]
            width = (p.high - p.low) / bins if p.high > p.low else 0.0
            n_bins = bins if width > 0 else 1
            p.histogram = [
                (p.low + i * width, p.low + (i + 1) * width if width else p.high, counts.get(i, 0))
                for i in range(n_bins)
            ]
        for p in profiles.values():
            p.top_values.sort(key=lambda kv: (-kv[1], kv[0]))
    return rows, [profiles[n] for n in names]


def profile_table(
    spark, config, *, table: str, selection, columns: Sequence[str] | None = None, store: bool = True
) -> TableProfile:
    """Profile a selection of one of the pipeline's tables and store it in ``profiles``.

    ``columns`` (default: every column but the internal ones, which are refused when named).
    """
    from featuremill.quality.spec import quality_of
    from featuremill.quality.tables import read_selection, refuse_internal, resolve_table, shown

    settings = quality_of(config).profile
    ref = resolve_table(config, table)
    df, resolved, version = read_selection(spark, ref, selection)
    if columns:
        refuse_internal(columns, ref)
    # featuremill's bookkeeping columns (_ingest_date, _known_at, ...) are not data to profile
    chosen = list(columns) if columns else user_columns(df.columns)
    rows, profiles = profile_frame(df, columns=chosen, settings=settings)
    profile = TableProfile(
        profile_id=uuid.uuid4().hex,
        pipeline=config.name,
        table=table,
        selection=shown(selection, resolved),
        table_version=version,
        created_at=_now_text(),
        rows=rows,
        columns=profiles,
        settings=asdict(settings),
    )
    if store:
        store_profile(spark, config.tables.table("profiles"), profile, root=config.env.root)
    return profile


def store_profile(spark, path: str, profile: TableProfile, *, root: str) -> None:
    """Append ``profile`` (one row per column) to the Delta table at ``path``."""
    from pyspark.sql.types import _parse_datatype_string

    schema = _parse_datatype_string(PROFILES_SCHEMA)
    created = dt.datetime.fromisoformat(profile.created_at).replace(tzinfo=None)
    rows = []
    for c in profile.columns:
        rows.append(
            (
                profile.profile_id,
                profile.pipeline,
                profile.table,
                profile.selection,
                profile.table_version,
                created,
                profile.rows,
                c.column,
                c.data_type,
                c.kind,
                c.non_null,
                c.nulls,
                c.nan,
                c.infinite,
                c.distinct_approx,
                c.min,
                c.max,
                c.mean,
                c.stddev,
                c.quantile_probs or None,
                c.quantiles or None,
                [(v, n) for v, n in c.top_values] or None,
                [tuple(h) for h in c.histogram] or None,
                c.note or None,
            )
        )
    from featuremill.storage import io

    io.append(local_dataframe(spark, rows, schema), path, root=root, merge_schema=True, what="profile table")
    log.info("stored profile %s of %s (%d columns) in %s", profile.profile_id, profile.table, len(rows), path)


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _num_text(value) -> str | None:
    if value is None:
        return None
    return f"{value:.6g}" if not float(value).is_integer() or abs(value) >= 1e15 else str(int(value))


def _time_text(seconds, data_type: str) -> str | None:
    if seconds is None:
        return None
    moment = dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc)
    return moment.date().isoformat() if data_type == "date" else moment.strftime("%Y-%m-%d %H:%M:%S")
