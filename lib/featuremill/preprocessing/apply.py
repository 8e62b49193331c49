"""Apply a fitted state: ``DataFrame -> DataFrame`` built from plain Spark SQL expressions.

No UDFs and no joins: every fitted number is a literal in the plan (category maps are map
literals looked up with ``try_element_at``), so the same state gives the same values on a laptop,
on a cluster, in training-set generation and in the feature job. The whole transform is one
``select`` (one projection in the plan, whatever the number of columns).

Modes:

* ``serving`` (default): every row is treated as unseen at fit time; target encoding uses the
  full-data statistics.
* ``training``: the rows are the ones the state was fitted on (or rows like them); target
  encoding gives each row the value computed without its own fold (out-of-fold), so a row's own
  label never reaches its feature. Needs the state's ``key`` columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from featuremill.core.errors import PreprocessingError
from featuremill.core.sql import col, literal
from featuremill.preprocessing.state import ColumnState, EncodeState, FittedState

log = logging.getLogger(__name__)

MODES = ("serving", "training")
FOLD_COLUMN = "__fm_fold"

_FLOAT_TYPES = ("float", "double")
#: Category lookups with more entries than this are broadcast-joined instead of inlined as a map.
MAP_LITERAL_LIMIT = 2000


def fold_expression(key: Sequence[str], *, folds: int, seed: int):
    """Out-of-fold group of a row: ``pmod(xxhash64(seed, key...), folds)``, an int in ``[0, folds)``.

    Depends only on the key values (not on partitioning or row order); multi-column keys are
    hashed column by column, so ``("ab", "c")`` and ``("a", "bc")`` do not collide by construction.
    """
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.lit(int(seed)), *[col(k) for k in key]), F.lit(int(folds))).cast("int")


def clean_numeric(name: str, input_type: str):
    """The column as double with NaN turned into null (NaN counts as missing everywhere)."""
    from pyspark.sql import functions as F

    c = col(name)
    if input_type in _FLOAT_TYPES:
        return F.when(F.isnan(c), F.lit(None).cast("double")).otherwise(c.cast("double"))
    return c.cast("double")


def numeric_columns(state: ColumnState, *, upto: str = "scale"):
    """``(value, extra)`` for a numeric column: the transformed value (double) and indicator columns.

    ``upto`` stops after ``impute`` or ``outliers`` (fitting uses it to compute scaling statistics
    on exactly the values the scaler will see).
    """
    from pyspark.sql import functions as F

    x = clean_numeric(state.column, state.input_type)
    extra = []
    if state.impute is not None:
        if state.impute.indicator_column:
            extra.append(x.isNull().cast("int").alias(state.impute.indicator_column))
        x = F.coalesce(x, F.lit(float(state.impute.fill)))
    if upto == "impute":
        return x, extra
    o = state.outliers
    if o is not None and o.lower is not None and o.upper is not None:
        lo, hi = F.lit(float(o.lower)), F.lit(float(o.upper))
        if o.flag_column:
            extra.append(F.coalesce(((x < lo) | (x > hi)).cast("int"), F.lit(0)).alias(o.flag_column))
        if o.clip:
            # least/greatest skip nulls: without the guard a null would become the lower bound.
            x = F.when(x.isNull(), F.lit(None).cast("double")).otherwise(F.least(F.greatest(x, lo), hi))
    elif o is not None and o.flag_column:
        extra.append(F.lit(0).alias(o.flag_column))
    if upto == "outliers":
        return x, extra
    if state.scale is not None:
        x = (x - F.lit(float(state.scale.center))) / F.lit(float(state.scale.scale))
    return x, extra


def category_value(state: ColumnState):
    """The column as a string (the form categories are keyed by), after mode/constant imputation."""
    from pyspark.sql import functions as F

    v = col(state.column).cast("string")
    if state.input_type in _FLOAT_TYPES:
        v = F.when(F.isnan(col(state.column)), F.lit(None).cast("string")).otherwise(v)
    if state.impute is not None and state.impute.fill is not None:
        v = F.coalesce(v, F.lit(str(state.impute.fill)))
    return v


def _sql_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "array(" + ", ".join(_sql_value(v) for v in value) + ")"
    if isinstance(value, float):
        return literal(float(value))
    return literal(value)


def _map_literal(keys: Sequence[str], values: Sequence):
    """A map literal as one SQL expression: parsed once by the JVM instead of one call per entry
    (thousands of category levels would otherwise cost thousands of Py4J round trips)."""
    from pyspark.sql import functions as F

    if not keys:
        return None
    return F.expr(f"map_from_arrays({_sql_value(list(keys))}, {_sql_value(list(values))})")


def lookup_entries(enc: EncodeState) -> tuple[list[str], list, str]:
    """``(keys, values, value type)`` of a category lookup: the level code (one-hot, ordinal;
    rare levels share ``len(levels)``) or the per-fold encodings (target; rare levels share the
    pooled rare encoding). Null and unknown values are handled outside the lookup."""
    keys: list[str] = []
    values: list = []
    if enc.method == "target":
        for level, encoding in zip(enc.levels, enc.encodings):
            if level is not None:
                keys.append(level)
                values.append([float(x) for x in encoding])
        if enc.rare_encoding is not None:
            for level in enc.rare_levels:
                keys.append(level)
                values.append([float(x) for x in enc.rare_encoding])
        return keys, values, "array<double>"
    for i, level in enumerate(enc.levels):
        if level is not None:
            keys.append(level)
            values.append(i)
    for level in enc.rare_levels:
        keys.append(level)
        values.append(len(enc.levels))
    return keys, values, "int"


def _found(enc: EncodeState, v, joined):
    """The looked-up value: from a broadcast join (``joined``) or a map literal in the plan."""
    from pyspark.sql import functions as F

    if joined is not None:
        return joined
    keys, values, value_type = lookup_entries(enc)
    lookup = _map_literal(keys, values)
    return F.try_element_at(lookup, v) if lookup is not None else F.lit(None).cast(value_type)


def _level_code(enc: EncodeState, v, joined=None):
    """Integer code of a category: its level index; rare -> len(levels); unseen -> -1.

    A null value has a code only when nulls were a level at fit time; otherwise it is unseen.
    When more distinct values existed at fit than the state stores (``overflow``), a value not in
    the state may have been seen, so it counts as rare rather than unseen.
    """
    from pyspark.sql import functions as F

    unknown = len(enc.levels) if enc.overflow else -1
    null_code = enc.levels.index(None) if None in enc.levels else -1
    found = _found(enc, v, joined)
    return F.when(v.isNull(), F.lit(null_code)).otherwise(F.coalesce(found, F.lit(unknown))).cast("int")


def categorical_columns(state: ColumnState, *, fold=None, joined=None):
    """``(outputs, extra)`` for a categorical column: encoded column(s) and indicator columns.

    ``joined`` is the column holding the looked-up value when the lookup was broadcast-joined."""
    from pyspark.sql import functions as F

    enc = state.encode
    v = category_value(state)
    extra = []
    if state.impute is not None and state.impute.indicator_column:
        raw = col(state.column)
        missing = raw.isNull() | F.isnan(raw) if state.input_type in _FLOAT_TYPES else raw.isNull()
        extra.append(missing.cast("int").alias(state.impute.indicator_column))
    if enc is None:
        typed = v if state.input_type == "string" else v.cast(state.input_type)
        return [typed.alias(state.column)], extra
    if enc.method == "hashing":
        bucket = F.pmod(F.crc32(v.cast("binary")), F.lit(int(enc.buckets))).cast("int")
        return [bucket.alias(state.column)], extra
    if enc.method == "ordinal":
        return [_level_code(enc, v, joined).alias(state.column)], extra
    if enc.method == "one_hot":
        code = _level_code(enc, v, joined)
        outs = []
        names = list(enc.output_columns)
        n_levels = len(enc.levels)
        for i in range(n_levels):
            outs.append((code == F.lit(i)).cast("int").alias(names[i]))
        pos = n_levels
        if enc.has_rare:
            outs.append((code == F.lit(n_levels)).cast("int").alias(names[pos]))
            pos += 1
        outs.append((code == F.lit(-1)).cast("int").alias(names[pos]))
        return outs, extra
    if enc.method == "target":
        return [_target_value(enc, v, fold, joined).alias(state.column)], extra
    raise PreprocessingError(f"column {state.column!r}: unknown encoding {enc.method!r} in the fitted state")


def _double_array(values: Sequence[float]):
    from pyspark.sql import functions as F

    return F.array(*[F.lit(float(x)) for x in values])


def _target_value(enc: EncodeState, v, fold, joined=None):
    """Smoothed mean of the label for the category; ``fold`` picks the out-of-fold value."""
    from pyspark.sql import functions as F

    null_array = next((e for level, e in zip(enc.levels, enc.encodings) if level is None), None)
    unknown = enc.rare_encoding if (enc.overflow and enc.rare_encoding is not None) else enc.prior
    found = _found(enc, v, joined)
    values = F.when(v.isNull(), _double_array(null_array if null_array is not None else enc.prior)).otherwise(
        F.coalesce(found, _double_array(unknown))
    )
    index = fold if fold is not None else F.lit(len(enc.prior) - 1)
    return F.get(values, index).cast("double")


def _join_large_lookups(df, states: Sequence[ColumnState]):
    """Broadcast-join the lookups above :data:`MAP_LITERAL_LIMIT` entries (a map literal that
    size makes plans slow to analyse); returns the joined frame and column -> looked-up column."""
    from pyspark.sql import functions as F

    joined: dict[str, str] = {}
    for i, cs in enumerate(states):
        enc = cs.encode
        if cs.kind != "categorical" or enc is None or enc.method not in ("ordinal", "one_hot", "target"):
            continue
        keys, values, value_type = lookup_entries(enc)
        if len(keys) <= MAP_LITERAL_LIMIT:
            continue
        key_col, value_col, probe = f"__fm_lookup_key_{i}", f"__fm_lookup_value_{i}", f"__fm_lookup_probe_{i}"
        table = df.sparkSession.createDataFrame(list(zip(keys, values)), f"{key_col} string, {value_col} {value_type}")
        df = (
            df.withColumn(probe, category_value(cs))
            .join(F.broadcast(table), col(probe) == col(key_col), "left")
            .drop(probe, key_col)
        )
        joined[cs.column] = value_col
    return df, joined


def apply_preprocessing(df, state: FittedState, *, mode: str = "serving", missing: str = "error"):
    """DataFrame -> DataFrame: the fitted transforms of ``state`` applied to ``df``.

    Required columns: every input column of the state (``missing="skip"`` leaves out the ones
    ``df`` lacks, for tables that hold only some of the features) and, in ``training`` mode, the
    state's key columns. Output, in ``df``'s column order: each transformed column in place
    (numeric: double; ordinal/hashing: int; target: double; one-hot: one int 0/1 column per
    level, then ``__rare`` when the fit had rare levels, then ``__unseen``), followed by its
    ``__missing`` / ``__outlier`` indicators (int 0/1). Other columns pass through unchanged
    (``remainder: passthrough``) or are dropped except the label and key (``remainder: drop``).
    Grain and row count are those of ``df``.
    """

    if mode not in MODES:
        raise PreprocessingError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    present = set(df.columns)
    absent = [c for c in state.input_columns if c not in present]
    if absent and missing != "skip":
        raise PreprocessingError(
            f"fitted state {state.name!r} v{state.version}: input column(s) {', '.join(map(repr, absent))} "
            f"missing from the data (columns: {', '.join(df.columns)})"
        )
    if absent:
        log.info("fitted state %s: skipping columns absent from the data: %s", state.name, ", ".join(absent))
    fold = None
    if mode == "training" and state.uses_folds:
        lacking = [k for k in state.key if k not in present]
        if lacking:
            raise PreprocessingError(
                f"training mode needs the key column(s) {', '.join(map(repr, lacking))} of fitted state "
                f"{state.name!r} to assign out-of-fold groups"
            )
        fold = fold_expression(state.key, folds=state.folds, seed=state.seed)
    by_column = {c.column: c for c in state.columns if c.column in present}
    keep_always = set(state.key) | ({state.label} if state.label else set())
    columns = list(df.columns)
    df, joined = _join_large_lookups(df, list(by_column.values()))
    outputs = []
    for name in columns:
        cs = by_column.get(name)
        if cs is None:
            if state.remainder == "passthrough" or name in keep_always:
                outputs.append(col(name))
            continue
        if cs.kind == "numeric":
            value, extra = numeric_columns(cs)
            main = [value.alias(name)]
        else:
            lookup = col(joined[name]) if name in joined else None
            main, extra = categorical_columns(cs, fold=fold, joined=lookup)
        outputs.extend(main + extra)
    new_names = [n for cs in by_column.values() for n in cs.output_columns if n != cs.column]
    overlap = sorted(set(new_names) & (present - set(by_column)))
    if overlap and state.remainder == "passthrough":
        raise PreprocessingError(
            f"output column(s) {', '.join(overlap)} of fitted state {state.name!r} already "
            "exist in the data; rename them or use remainder: drop"
        )
    return df.select(*outputs)
