"""Replay: a feature run recomputed from the versions it read equals what it wrote, after the
source changed (append, update, delete); timestamps resolve by commit time, not file time; runs
outside the replay window are refused before anything is read. Also `featuremill runs`."""

from __future__ import annotations

import datetime as dt
import json
import os
import types

import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from featuremill import cli
from featuremill.config import load_pipeline
from featuremill.core.errors import ChangedInputError, ReplayError, ReplayWindowError, WritePathError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.pipelines.replay import replay_path, replay_run
from featuremill.storage import io
from featuremill.storage.delta_log import version_at
from tests.integration.reliability_data import (
    PIPELINE,
    assert_same_rows,
    day,
    feature_rows,
    make_project,
    reference_features,
)

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow


def _every_column(df):
    """Every column of a feature frame as pandas, rows sorted by the keys (for exact comparison)."""
    return df.toPandas().sort_values(["customer", "ts"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    """Days 1..5 ingested and built once (run A); its feature rows captured right after."""
    root = tmp_path_factory.mktemp("replay")
    pipeline, purchases = make_project(root, days=5)
    config = load_pipeline(pipeline)
    run_ingest(spark, config, start=day(1), end=day(5))
    [run_a] = run_features(spark, config, start=day(1), end=day(5))
    captured = feature_rows(spark.read.format("delta").load(config.tables.features("spend")))
    captured_all = _every_column(spark.read.format("delta").load(config.tables.features("spend")))
    [ledger_row] = (
        spark.read.format("delta").load(config.tables.run_log).where(F.col("run_id") == run_a.run_id).collect()
    )
    return types.SimpleNamespace(
        root=root,
        pipeline=pipeline,
        purchases=purchases,
        config=config,
        run_id=run_a.run_id,
        captured=captured,
        captured_all=captured_all,
        row=ledger_row,
    )


def test_replay_after_append_update_delete_reproduces_the_first_run(spark, first_run):
    config, run_id = first_run.config, first_run.run_id
    validated = config.tables.validated("purchases")
    original = list(first_run.purchases)
    # the captured output is right to begin with (independent reference)
    assert_same_rows(first_run.captured, reference_features(original, start=day(1), end=day(5)))

    # change the source: append two purchases landed on day 3, update one amount, delete one row
    table = spark.read.format("delta").load(validated)
    appended = [
        {
            "id": "new1",
            "customer": 11,
            "product": 1,
            "ts": dt.datetime(2026, 9, 3, 12, 0),
            "amount": 40.0,
            "landing": day(3),
        },
        {
            "id": "new2",
            "customer": 12,
            "product": 3,
            "ts": dt.datetime(2026, 9, 2, 8, 30),
            "amount": 7.5,
            "landing": day(3),
        },
    ]
    extra = spark.createDataFrame(
        [
            (p["id"], p["customer"], p["product"], p["ts"], p["amount"], p["ts"].date(), p["landing"], "test-append")
            for p in appended
        ],
        table.schema,
    )
    extra.write.format("delta").mode("append").save(validated)
    updated_id, deleted_id = sorted(p["id"] for p in original if p["landing"] == day(2))[:2]
    DeltaTable.forPath(spark, validated).update(F.col("id") == updated_id, {"amount": F.col("amount") + 100})
    DeltaTable.forPath(spark, validated).delete(F.col("id") == deleted_id)
    changed = [
        dict(p, amount=p["amount"] + 100) if p["id"] == updated_id else p for p in original if p["id"] != deleted_id
    ] + appended

    with pytest.raises(ChangedInputError):
        run_features(spark, config, start=day(1), end=day(5))
    run_features(spark, config, start=day(1), end=day(5), corrective=True)
    live = feature_rows(spark.read.format("delta").load(config.tables.features("spend")))
    assert_same_rows(live, reference_features(changed, start=day(1), end=day(5)))

    [result] = replay_run(spark, config, run_id=run_id)

    assert result.output_path == replay_path(config, run_id, "spend")
    assert result.versions == dict(first_run.row["input_versions"])
    replayed = feature_rows(spark.read.format("delta").load(result.output_path))
    assert_same_rows(replayed, first_run.captured)
    assert_same_rows(replayed, reference_features(original, start=day(1), end=day(5)))
    # bit for bit: every column and row equals what run A wrote, exactly (no tolerance)...
    replayed_all = _every_column(spark.read.format("delta").load(result.output_path))
    assert list(replayed_all.columns) == list(first_run.captured_all.columns)
    pd.testing.assert_frame_equal(replayed_all, first_run.captured_all, check_exact=True)
    # ...and the replay says so, by the content fingerprint of the run's output version
    assert result.comparison is not None and result.comparison.identical
    assert result.comparison.original_version == first_run.row["output_versions"]["features.spend"]
    assert result.comparison.rows_replayed == len(first_run.captured_all)
    assert not result.comparison.column_rows

    # replayed from today's inputs instead, the output differs, and the replay says where:
    # per column, the rows that differ, as the two independent references differ
    latest = io.delta_version(spark, validated)
    [moved] = replay_run(spark, config, run_id=run_id, as_of_versions={"purchases": latest})
    assert not moved.comparison.identical
    before = reference_features(original, start=day(1), end=day(5))
    after = reference_features(changed, start=day(1), end=day(5))
    merged = before.merge(after, on=["customer", "ts"], how="outer", suffixes=("_o", "_r"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    expected = {}
    for c in ("n_2d", "amount_sum_2d", "toy_spend_3d"):
        a, b = both[f"{c}_o"].astype(float), both[f"{c}_r"].astype(float)
        same = (a.isna() & b.isna()) | ((a - b).abs() < 1e-9)
        if (~same).sum():
            expected[c] = int((~same).sum())
    assert {c: n for c, n in moved.comparison.column_rows.items() if c in expected} == expected
    assert set(moved.comparison.column_rows) - set(expected) <= {"_known_at"}
    assert moved.comparison.only_original == int((merged["_merge"] == "left_only").sum())
    assert moved.comparison.only_replayed == int((merged["_merge"] == "right_only").sum())
    assert "DIFFERS" in moved.comparison.describe() and "amount_sum_2d on" in moved.comparison.describe()
    # the live table keeps the corrected values
    assert_same_rows(
        feature_rows(spark.read.format("delta").load(config.tables.features("spend"))),
        reference_features(changed, start=day(1), end=day(5)),
    )

    # "what did the inputs look like at time T": T resolves by commit time. Make every log
    # file look written at the same instant (as a copy or restore would): DESCRIBE HISTORY then
    # dates all versions alike, the commit log still tells them apart.
    log_dir = os.path.join(validated, "_delta_log")
    for name in os.listdir(log_dir):
        os.utime(os.path.join(log_dir, name), (2_000_000_000, 2_000_000_000))
    when = first_run.row["finished_at"]
    history = [r["timestamp"] for r in DeltaTable.forPath(spark, validated).history().collect()]
    assert min(history) > when  # the trap: by DESCRIBE HISTORY, no version existed at `when`
    assert version_at(spark, validated, when) == first_run.row["input_versions"]["validated.purchases"]
    assert version_at(spark, validated, dt.datetime.now()) == io.delta_version(spark, validated)


def test_replay_outside_the_window_fails_clearly_before_reading(spark, first_run):
    config, run_id, started = first_run.config, first_run.run_id, first_run.row["started_at"]
    out = replay_path(config, run_id, "spend") + "_never"

    with pytest.raises(ReplayWindowError) as err:
        replay_run(spark, config, run_id=run_id, now=started + dt.timedelta(days=31), output_root=out)
    message = str(err.value)
    assert f"run {run_id}" in message and "replay window of 30d" in message and "nothing was" in message
    assert not os.path.exists(out)

    # inside the window it would run (checked without computing: a day later passes the checks)
    # a version superseded before the window is refused even when pinned by hand
    products = config.tables.validated("products")
    io.set_table_properties(
        spark, products, {"featuremill.test": "x"}, root=config.env.warehouse
    )  # products gets a version 1
    with pytest.raises(ReplayWindowError, match="superseded"):
        replay_run(
            spark,
            config,
            run_id=run_id,
            as_of_versions={"purchases": 0, "products": 0},
            now=dt.datetime.now() + dt.timedelta(days=31),
            output_root=out,
        )
    with pytest.raises(ReplayError, match="has no version 999"):
        replay_run(spark, config, run_id=run_id, as_of_versions={"purchases": 999}, output_root=out)
    with pytest.raises(ReplayError, match="is a ingest run|is an ingest run"):
        ingest_run = (
            spark.read.format("delta").load(config.tables.run_log).where(F.col("job") == "ingest").first()["run_id"]
        )
        replay_run(spark, config, run_id=ingest_run, output_root=out)
    assert not os.path.exists(out)


def test_replay_cli_with_a_one_second_window_refuses_an_older_run(spark, first_run, capsys):
    # the same pipeline declared with a 1-second window; the run is older than that by now
    short = first_run.pipeline.parent / "shop_short_window.yaml"
    short.write_text(PIPELINE.format(window="1s"))
    output = first_run.root / "cli_replay"
    when = first_run.row["finished_at"].isoformat()
    code = cli.main(
        [
            "replay",
            str(short),
            "--run-id",
            first_run.run_id,
            "--as-of-timestamp",
            f"purchases={when}",
            "--output",
            str(output),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "older than the pipeline's replay window of 1s" in captured.err
    assert not output.exists()


def test_runs_command_shows_duration_rows_and_freshness(spark, first_run, capsys):
    code = cli.main(["runs", str(first_run.pipeline), "--limit", "50"])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[1]
    for column in ("duration", "rows read", "rows written", "freshness", "status", "commit"):
        assert column in header
    assert first_run.run_id[:12] in out
    row = first_run.row
    # freshness = end of the run - latest event time it wrote (from the raw data, not the code)
    latest = max(p["ts"] for p in first_run.purchases)
    assert row["max_event_time"] == latest
    assert row["metrics"]["freshness_s"] == pytest.approx((row["finished_at"] - latest).total_seconds(), abs=1e-3)
    assert row["metrics"]["executor_cpu_s"] > 0
    assert row["metrics"]["stage_s.input_scan"] > 0 and row["metrics"]["stage_s.compute_merge"] > 0
    assert json.loads(row["details"])["commit"] == "written"


def test_replay_output_outside_the_warehouse_is_refused_before_any_work(spark, first_run, capsys):
    config, run_id = first_run.config, first_run.run_id
    outside = first_run.root / "outside_replay"  # beside the warehouse, not in it
    escape = f"{config.env.warehouse}/../escaped_replay"
    for target in (str(outside), escape):
        with pytest.raises(WritePathError, match="outside the warehouse root"):
            replay_run(spark, config, run_id=run_id, output_root=target)
    code = cli.main(["replay", str(first_run.pipeline), "--run-id", run_id, "--output", str(outside)])
    assert code == 2
    assert "outside the warehouse root" in capsys.readouterr().err
    assert not outside.exists()
    assert not (first_run.root / "escaped_replay").exists()


def test_replay_cli_prints_the_comparison(spark, first_run, capsys):
    code = cli.main(["replay", str(first_run.pipeline), "--run-id", first_run.run_id])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "identical to the run's output" in out and "every column" in out


def test_ingest_rerun_from_the_same_files_is_bit_identical(spark, first_run, tmp_path):
    """The ingest side of replay: the same raw files ingested again (into a fresh warehouse) give
    the validated table the ingest run wrote (at its recorded output version), every column and
    row, by the content fingerprint and by exact comparison."""
    from featuremill.pipelines.replay import compare_outputs

    config = first_run.config
    [ingest_row] = (
        spark.read.format("delta")
        .load(config.tables.run_log)
        .where((F.col("job") == "ingest") & (F.col("target") == "purchases") & (F.col("status") == "succeeded"))
        .collect()
    )
    version = ingest_row["output_versions"]["validated.purchases"]
    fresh = load_pipeline(first_run.pipeline, overrides={"warehouse": str(tmp_path / "warehouse2")})
    run_ingest(spark, fresh, start=day(1), end=day(5), sources=["purchases"])
    original = io.read_delta(spark, config.tables.validated("purchases"), version=version)
    again = io.read_delta(spark, fresh.tables.validated("purchases"))
    comparison = compare_outputs(original, again, keys=["id"], original_version=version)
    assert comparison.identical, comparison.describe()
    assert comparison.rows_original == len(first_run.purchases)
    expected = original.toPandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(again.toPandas().sort_values("id").reset_index(drop=True), expected, check_exact=True)
