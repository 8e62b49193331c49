"""local_dataframe: the rows and types createDataFrame gives, without a Python worker."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import pytest

from featuremill.core.local_rows import local_dataframe
from tests.conftest import physical_plan

SCHEMA = (
    "run_id string, n bigint, i int, ts timestamp, ntz timestamp_ntz, m map<string,double>, d date, "
    "dec decimal(20,6), b binary, f float, flag boolean, arr array<struct<a: string, b: double>>, `odd name` string"
)
ROWS = [
    (
        "r1",
        2**62,
        -3,
        dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
        dt.datetime(2024, 1, 1, 12, 0, 0, 1),
        {"a": 1.5, "b": float("nan"), "c": None},
        dt.date(2024, 1, 2),
        decimal.Decimal("12345678901234.123456"),
        b"\x00\xff",
        0.1,
        True,
        [("x", 1e-300), ("y", None)],
        "w",
    ),
    (None,) * 13,
]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_local_dataframe_equals_create_dataframe_for_every_type(spark):
    built = local_dataframe(spark, ROWS, SCHEMA)
    reference = spark.createDataFrame(ROWS, SCHEMA)
    assert built.schema.simpleString() == reference.schema.simpleString()
    got, want = [tuple(r) for r in built.collect()], [tuple(r) for r in reference.collect()]
    assert _same(got, want), (got, want)
    # values written by hand, not only "as createDataFrame": a NaN inside a map and 2**62 survive
    assert got[0][1] == 4611686018427387904 and math.isnan(got[0][5]["b"]) and got[1] == (None,) * 13


def test_local_dataframe_accepts_mappings_and_no_rows(spark):
    built = local_dataframe(spark, [{"k": "a", "v": 1}, {"v": 2}], "k string, v bigint")
    assert [tuple(r) for r in built.collect()] == [("a", 1), (None, 2)]
    assert local_dataframe(spark, [], "k string").count() == 0


def test_local_dataframe_refuses_a_value_of_the_wrong_type(spark):
    with pytest.raises(TypeError, match="field v"):
        local_dataframe(spark, [("a", "not a number")], "k string, v bigint")


def test_local_dataframe_plan_has_no_python_rdd(classic_spark):
    spark = classic_spark  # over Connect, local_dataframe is createDataFrame (an Arrow batch)
    plan = physical_plan(local_dataframe(spark, ROWS, SCHEMA))
    reference = physical_plan(spark.createDataFrame(ROWS, SCHEMA))
    assert "ExistingRDD" in reference  # what createDataFrame builds: rows from a Python RDD
    assert "ExistingRDD" not in plan and "Range" in plan
