"""Scenario 11: hostile configuration values.

Column names with quotes, backticks, dots, comment markers or SQL keywords, and filter values
written as SQL injections, go through quoted identifiers and bound literals: the query computes
exactly what the names and values say (checked against hand-computed counts; an injected
``OR '1'='1'`` would count every row). Names Delta cannot store are refused at validation time;
table names cannot climb out of the warehouse; writes outside the warehouse root are refused
before any work.
"""

from __future__ import annotations

import datetime as dt
import os
import textwrap

import pytest

from featuremill.config import load_pipeline
from featuremill.core.errors import ConfigError, WritePathError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.training_set import TrainingSetOptions, build_training_set, parse_feature_requests
from featuremill.storage import io

D1 = dt.date(2024, 3, 1)
HOSTILE_A = "x' OR '1'='1"
HOSTILE_B = "a`); DROP TABLE t; --"

PIPELINE = """\
pipeline: attack
owner: tests@example.com
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: event_date
    event_time: event_ts
    key: event_id
    columns:
      event_id: string
      customer_id: {type: bigint, nullable: false}
      event_ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}
      amount: double
      select: string
      "we`ird": string
      "o'quote": string
      dot.ted: string
      "x--comment": string
feature_sets:
  - name: f
    description: hostile filters
    owner: tests@example.com
    version: 1
    source: tx
    entity: customer_id
    features:
      - {name: n_2d, function: count, window: 2d, description: events}
      - {name: hits_2d, function: count, window: 2d, where: {column: select, equals: "x' OR '1'='1"}, description: a}
      - {name: ticks_2d, function: count, window: 2d, where: {column: "we`ird", equals: "a`); DROP TABLE t; --"},
         description: b}
      - {name: dot_sum_2d, function: sum, column: amount, window: 2d, where: {column: dot.ted, equals: "1;2"},
         description: c}
quality:
  tables:
    validated.tx:
      rules:
        - {name: quoted_values, check: allowed_values, column: "o'quote", values: ["q1", "q2' OR '1'='1", "q3"],
           severity: quarantine}
"""

HEADER = "event_id,customer_id,event_ts,amount,select,we`ird,o'quote,dot.ted,x--comment"
LINES = [
    f"r1,1,2024-03-01 10:00:00,1.0,{HOSTILE_A},{HOSTILE_B},q1,1;2,c1",
    "r2,1,2024-03-01 11:00:00,2.0,anything,plain,q3,1,c2",
    f"r3,1,2024-03-01 12:00:00,4.0,x,{HOSTILE_B},q1,1;2,c3",
    "r4,2,2024-03-01 12:00:00,8.0,' OR 1=1 --,b,q1,x,c4",
    "r5,2,2024-03-01 13:00:00,16.0,x,b,q2,x,c5",  # 'q2' is not the allowed "q2' OR '1'='1"
]


def _project(root, pipeline_text=PIPELINE):
    (root / "conf" / "pipelines").mkdir(parents=True)
    (root / "conf" / "env").mkdir(parents=True)
    (root / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    (root / "conf" / "pipelines" / "attack.yaml").write_text(textwrap.dedent(pipeline_text))
    folder = root / "data" / "tx" / "event_date=2024-03-01"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text(HEADER + "\n" + "\n".join(LINES) + "\n")
    return load_pipeline(root / "conf" / "pipelines" / "attack.yaml", env="local")


@pytest.mark.slow  # runs pipeline jobs: whole suite only, not the fast lane
def test_hostile_names_and_values_never_change_the_query(spark, tmp_path):
    config = _project(tmp_path)
    tx = run_ingest(spark, config, start=D1, end=D1)[0]
    assert (tx.rows_read, tx.rows_valid, tx.rows_quarantined) == (5, 4, 1)
    validated = spark.read.format("delta").load(config.tables.validated("tx"))
    assert validated.columns[:9] == [
        "event_id",
        "customer_id",
        "event_ts",
        "amount",
        "select",
        "we`ird",
        "o'quote",
        "dot.ted",
        "x--comment",
    ]
    got = {
        r["event_id"]: (r["select"], r["we`ird"], r["o'quote"], r["dot.ted"], r["x--comment"])
        for r in validated.collect()
    }
    assert got == {
        "r1": (HOSTILE_A, HOSTILE_B, "q1", "1;2", "c1"),
        "r2": ("anything", "plain", "q3", "1", "c2"),
        "r3": ("x", HOSTILE_B, "q1", "1;2", "c3"),
        "r4": ("' OR 1=1 --", "b", "q1", "x", "c4"),
    }
    quarantined = spark.read.format("delta").load(config.tables.quarantine).collect()
    assert [(r["rule"], r["reason"]) for r in quarantined] == [
        ("quoted_values", "rule quoted_values: field 'o'quote': 'q2' is not one of q1, q2' OR '1'='1, q3")
    ]

    run_features(spark, config, start=D1, end=D1)
    feats = spark.read.format("delta").load(config.tables.features("f"))
    rows = sorted(
        (r["customer_id"], str(r["event_ts"]), r["n_2d"], r["hits_2d"], r["ticks_2d"], r["dot_sum_2d"])
        for r in feats.collect()
    )
    # Counted by hand from LINES (r5 is quarantined): only exact matches of the hostile strings count.
    assert rows == [
        (1, "2024-03-01 10:00:00", 1, 1, 1, 1.0),
        (1, "2024-03-01 11:00:00", 2, 1, 1, 1.0),
        (1, "2024-03-01 12:00:00", 3, 1, 2, 5.0),
        (2, "2024-03-01 12:00:00", 1, 0, 0, None),
    ]
    assert [io.delta_version(spark, p) for p in (config.tables.validated("tx"), config.tables.features("f"))] == [0, 0]


@pytest.mark.parametrize(
    "edit, where",
    [
        (("      dot.ted: string\n", "      semi;colon: string\n"), "sources.tx.columns.semi;colon"),
        (("      dot.ted: string\n", '      "sp ace(1)": string\n'), "sources.tx.columns.sp ace(1)"),
        (("pipeline: attack\n", "pipeline: ../../etc\n"), "pipeline"),
        (("  - name: f\n", '  - name: "f/../../../x"\n'), "feature_sets[0].name"),
        (("  tx:\n    kind: events", '  "../tx":\n    kind: events'), "sources.../tx"),
    ],
)
def test_names_delta_cannot_store_or_that_leave_the_warehouse_are_refused_at_validation(tmp_path, edit, where):
    with pytest.raises(ConfigError) as info:
        _project(tmp_path, PIPELINE.replace(*edit))
    assert any(issue.path == where for issue in info.value.issues), str(info.value)
    assert not (tmp_path / "warehouse").exists()


def test_check_write_path_refuses_outside_the_warehouse(tmp_path):
    root = tmp_path / "warehouse"
    (root / "shop").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, root / "shop" / "link")
    assert io.check_write_path(str(root / "shop" / "training" / "t1"), str(root)) == str(
        root / "shop" / "training" / "t1"
    )
    assert io.check_write_path(f"file:{root}/shop/t2", str(root)) == f"file:{root}/shop/t2"
    assert io.check_write_path("s3://bucket/wh/shop/t", "s3://bucket/wh/") == "s3://bucket/wh/shop/t"
    for bad in (
        str(outside / "t"),
        f"{root}/../elsewhere/t",
        f"{root}/shop/link/t",
        f"{root}-other/t",
        "/tmp",
        "s3://other-bucket/wh/shop/t",
        "s3://bucket/wh/../x",
        "s3://bucket/wh2/t",
    ):
        root_text = "s3://bucket/wh" if bad.startswith("s3://") else str(root)
        with pytest.raises(WritePathError) as info:
            io.check_write_path(bad, root_text, what="training set")
        assert f"refusing to write the training set at {bad}: it is outside the warehouse root" in str(info.value)


def test_training_set_outside_the_warehouse_refused_before_any_work(spark, tmp_path):
    config = _project(tmp_path)
    outside = tmp_path / "exfiltrated"
    options = TrainingSetOptions(
        spine=str(tmp_path / "no-spine-needed"), features=parse_feature_requests("f"), out=str(outside)
    )
    with pytest.raises(WritePathError):
        build_training_set(spark, config, options, lock=None, lock_file=str(tmp_path / "lock.json"))
    inside_out = str(tmp_path / "warehouse" / "attack" / "training" / "t")
    options = TrainingSetOptions(
        spine=str(tmp_path / "no-spine-needed"),
        features=parse_feature_requests("f"),
        out=inside_out,
        manifest_out=str(tmp_path / "m.json"),
    )
    with pytest.raises(WritePathError) as info:
        build_training_set(spark, config, options, lock=None, lock_file=str(tmp_path / "lock.json"))
    assert "manifest" in str(info.value)
    assert not outside.exists() and not (tmp_path / "m.json").exists()
    assert not (tmp_path / "warehouse").exists()  # not even a run-log row: refused before the run started
