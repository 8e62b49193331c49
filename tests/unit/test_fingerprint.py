"""The one content fingerprint (transforms.fingerprint), as the manifest, the fitted states, the
feature job's dimension identity and the benchmark use it: nested maps, arrays, nulls, NaN and
-0.0, order and partitioning."""

from __future__ import annotations

import math

import pytest

from featuremill.bench import pit
from featuremill.core.fingerprint import content_fingerprint, content_hash_aggregate, frame_fingerprints
from featuremill.pipelines.build_features import content_identity
from featuremill.storage import manifest

SCHEMA = "id int, x double, s struct<name: string, tags: map<string, int>>, a array<map<string, double>>"


def _rows():
    return [
        (1, 0.5, ("a", {"k": 1, "j": 2}), [{"p": 1.0}, None]),
        (2, None, None, None),
        (3, float("nan"), ("c", None), [{"q": None}]),
        (4, 0.0, ("d", {}), []),
    ]


def fp(spark, rows, schema=SCHEMA):
    df = spark.createDataFrame(rows, schema)
    return manifest.frame_fingerprint(df)[1]


def test_the_four_users_compute_the_same_fingerprint(spark):
    df = spark.createDataFrame(_rows(), SCHEMA)
    rows, by_manifest = manifest.frame_fingerprint(df)
    assert rows == 4 and by_manifest.startswith("xxh64sum:") and by_manifest != "xxh64sum:0"
    by_aggregate = content_fingerprint(df.agg(content_hash_aggregate(df, "h")).first()["h"])
    assert by_aggregate == by_manifest
    assert content_identity(df) == {"rows": 4, "checksum": by_manifest}
    bench = df.withColumnRenamed("id", "label_id")
    assert pit.checksum(bench, ("x", "s", "a")) == (4, int(manifest.frame_fingerprint(bench)[1].split(":")[1]))
    # several column groups in one pass agree with one group at a time
    groups = frame_fingerprints(df, {"all": df.columns, "xs": ["x", "s"]})
    assert groups["all"] == (4, by_manifest)
    assert groups["xs"] == manifest.frame_fingerprint(df, ["x", "s"])


def test_order_and_partitioning_do_not_count(spark):
    base = fp(spark, _rows())
    shuffled = spark.createDataFrame(list(reversed(_rows())), SCHEMA).repartition(3)
    assert manifest.frame_fingerprint(shuffled)[1] == base
    # a map built in another order holds the same entries
    reordered = [(1, 0.5, ("a", {"j": 2, "k": 1}), [{"p": 1.0}, None])] + _rows()[1:]
    assert fp(spark, reordered) == base


@pytest.mark.parametrize(
    "change",
    [
        lambda r: [(1, 0.5, ("a", {"k": 1, "j": 3}), r[0][3])] + r[1:],  # a map value nested in a struct
        lambda r: [(1, 0.5, ("a", {"k": 1, "jj": 2}), r[0][3])] + r[1:],  # a map key nested in a struct
        lambda r: [(1, 0.5, r[0][2], [{"p": 2.0}, None])] + r[1:],  # a map value nested in an array
        lambda r: [(1, 0.5, r[0][2], [None, {"p": 1.0}])] + r[1:],  # array element order
        lambda r: [(1, 0.5, r[0][2], [{"p": 1.0}])] + r[1:],  # a null element dropped
        lambda r: r[:2] + [(3, float("nan"), ("c", None), [{"q": 0.0}])] + r[3:],  # a null map value set
        lambda r: r[:2] + [(3, None, ("c", None), [{"q": None}])] + r[3:],  # NaN -> null
        lambda r: r[:2] + [(3, float("nan"), ("c", {}), [{"q": None}])] + r[3:],  # null map -> empty map
        lambda r: r[:3] + [(4, 0.0, ("d", {}), [])] + r[3:],  # a repeated row counts
        lambda r: [(1, 0.5 + 1e-15, r[0][2], r[0][3])] + r[1:],  # the last bits of a double
    ],
)
def test_any_change_at_any_depth_changes_it(spark, change):
    assert fp(spark, change(_rows())) != fp(spark, _rows())


def test_nulls_are_placed_nan_is_one_value_and_minus_zero_is_zero(spark):
    pair = "a int, b int"
    assert fp(spark, [(None, 1)], pair) != fp(spark, [(1, None)], pair)
    arrays = "v array<int>"
    assert fp(spark, [([1, None],)], arrays) != fp(spark, [([None, 1],)], arrays)
    structs = "v struct<a: int, b: int>"
    assert fp(spark, [((None, 1),)], structs) != fp(spark, [((1, None),)], structs)
    doubles = "x double, y array<double>, m map<string, double>"
    zero = fp(spark, [(0.0, [0.0], {"k": 0.0})], doubles)
    assert fp(spark, [(-0.0, [-0.0], {"k": -0.0})], doubles) == zero
    nan = fp(spark, [(math.nan, [math.nan], {"k": math.nan})], doubles)
    assert nan != zero
    # a NaN made by Spark (sqrt(-1)) equals the NaN from Python
    from pyspark.sql import functions as F

    made = F.sqrt(F.lit(-1.0))
    computed = spark.range(1).select(
        made.alias("x"), F.array(made).alias("y"), F.create_map(F.lit("k"), made).alias("m")
    )
    assert manifest.frame_fingerprint(computed)[1] == nan
