"""Whole jobs on temporary Delta tables: the feature job with history helpers and the serving hook,
``featuremill fit`` (versioned, idempotent), ``featuremill apply`` and ``featuremill select``.

References: pandas over the rows the test wrote (history helpers), numpy statistics of the
training table (the preprocessed serving table), file and table contents (reports)."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest

from featuremill.cli import main
from featuremill.config import load_pipeline
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from tests.conftest import write_pipeline

PIPELINE = """\
pipeline: shop
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: event_date
    event_time: ts
    key: id
    columns:
      id: string
      cust: bigint
      ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}
      amount: double
      channel: string
feature_sets:
  - name: cust
    description: spend per customer
    owner: test
    version: 1
    source: tx
    entity: cust
    features:
      - {name: n_1d, function: count, window: 1d, description: d}
      - {name: sum_2d, function: sum, column: amount, window: 2d, description: d}
preprocessing:
  key: [cust, ts]
  label: churned
  transforms:
    - {columns: [sum_2d], impute: median, scale: standard}
    - {columns: [n_1d], scale: minmax}
  timeseries:
    - {feature_set: cust, column: sum_2d, window: 2d, lags: [1], diffs: [1], ema: {span: 3}}
  serving: {feature_sets: [cust]}
selection:
  exclude: [cust, ts, event_date, _feature_set_version]
  model: {trees: 10, max_depth: 3, permutation_rows: 200, permutation_repeats: 1}
"""

START = dt.date(2024, 5, 1)
DAYS = 5


def _write_events(project) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        folder = project / "data" / "tx" / f"event_date={day.isoformat()}"
        folder.mkdir(parents=True)
        lines = ["id,cust,ts,amount,channel"]
        for i in range(12):
            cust = int(rng.integers(1, 5))
            ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=int(rng.integers(0, 1440)))
            amount = round(float(rng.exponential(20)), 2)
            lines.append(f"e{d}-{i},{cust},{ts:%Y-%m-%d %H:%M:%S},{amount},{'web' if i % 2 else 'app'}")
            rows.append((cust, ts, amount))
        (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
    return pd.DataFrame(rows, columns=["cust", "ts", "amount"])


def _features(spark, config) -> pd.DataFrame:
    df = spark.read.format("delta").load(config.tables.features("cust"))
    return pd.DataFrame([r.asDict() for r in df.orderBy("cust", "ts").collect()])


@pytest.mark.slow
def test_feature_job_helpers_fit_serving_apply_and_select(spark, project, capsys):
    events = _write_events(project)
    path = write_pipeline(project, PIPELINE)
    config = load_pipeline(path, env="local")
    end = START + dt.timedelta(days=DAYS - 1)
    run_ingest(spark, config, start=START, end=end)
    run_features(spark, config, start=START, end=end)
    full = _features(spark, config)

    # history helpers over the feature rows, against pandas (window (t - 2d, t])
    assert {"sum_2d_lag1", "sum_2d_diff1", "sum_2d_ema"} <= set(full.columns)
    for _, g in full.groupby("cust"):
        g = g.reset_index(drop=True)
        for i in range(len(g)):
            prev = g.loc[i - 1] if i > 0 else None
            inside = prev is not None and prev["ts"] > g.loc[i, "ts"] - pd.Timedelta(days=2)
            expected = prev["sum_2d"] if inside else None
            assert (g.loc[i, "sum_2d_lag1"] == expected) or (expected is None and pd.isna(g.loc[i, "sum_2d_lag1"]))
    # the sum feature itself, for one row, from the raw events
    row = full.iloc[len(full) // 2]
    raw = events[
        (events["cust"] == row["cust"])
        & (events["ts"] > row["ts"] - pd.Timedelta(days=2))
        & (events["ts"] <= row["ts"])
    ]
    assert row["sum_2d"] == pytest.approx(raw["amount"].sum())

    # a training table: feature rows plus a label
    # under the warehouse, like the training-set job's output: the fit writes its manifest back
    training = str(project / "warehouse" / "training")
    feats = spark.read.format("delta").load(config.tables.features("cust"))
    feats.withColumn("churned", (feats["sum_2d"] > 40).cast("int")).write.format("delta").save(training)

    # its manifest, as the training-set job writes it: output rows and content fingerprint, computed
    # here in plain SQL (xxhash64 over every column and a null marker per column, summed)
    table = spark.read.format("delta").load(training)
    hashed = ", ".join(f"`{c}`, `{c}` IS NULL" for c in table.columns)
    n_rows, hash_sum = table.selectExpr("count(*)", f"sum(cast(xxhash64({hashed}) AS decimal(38,0)))").first()
    expected_fp = f"xxh64sum:{int(hash_sum)}"
    manifest_path = project / "warehouse" / "training.manifest.json"
    base_manifest = {
        "kind": "featuremill.training_set",
        "manifest_format": 1,
        "preprocessing": None,
        "output": {"path": training, "rows": n_rows, "fingerprint": expected_fp},
    }
    manifest_path.write_text(json.dumps(base_manifest))
    # a manifest that describes other rows is refused before any state is stored
    other = project / "warehouse" / "other.manifest.json"
    other.write_text(json.dumps({**base_manifest, "output": {"rows": n_rows + 1, "fingerprint": expected_fp}}))
    assert main(["fit", str(path), "--on", training, "--manifest", str(other)]) == 2
    assert "describes another training set" in capsys.readouterr().err
    assert not os.path.exists(f"{config.tables.root}/preprocessing_states")

    assert main(["fit", str(path), "--on", training, "--out", str(project / "warehouse" / "training_prep")]) == 0
    recorded = json.loads(manifest_path.read_text())["preprocessing"]
    stored_row = spark.read.format("delta").load(f"{config.tables.root}/preprocessing_states").first()
    assert recorded["version"] == 1 and recorded["name"] == stored_row["name"]
    assert recorded["state_fingerprint"] == stored_row["state_fingerprint"]
    assert recorded["data_fingerprint"] == stored_row["data_fingerprint"] == expected_fp
    assert recorded["states_table"] == f"{config.tables.root}/preprocessing_states"
    # the same rows written again as a new table version: same content fingerprint, same state version
    spark.read.format("delta").load(training).localCheckpoint(eager=True).write.format("delta").mode("overwrite").save(
        training
    )
    assert main(["fit", str(path), "--on", training]) == 0
    printed = capsys.readouterr().out
    assert "fit shop: version 1;" in printed and "version 1 (unchanged, already stored)" in printed
    states = spark.read.format("delta").load(f"{config.tables.root}/preprocessing_states")
    assert states.count() == 1
    assert json.loads(manifest_path.read_text())["preprocessing"] == recorded  # same entry on a re-run

    # serving hook: a feature run now also writes preprocessed/cust with the stored state
    run_features(spark, config, start=end - dt.timedelta(days=1), end=end)
    assert _features(spark, config).equals(full)  # incremental = full
    served = spark.read.format("delta").load(f"{config.tables.root}/preprocessed/cust")
    served = pd.DataFrame([r.asDict() for r in served.orderBy("cust", "ts").collect()])
    train = pd.DataFrame([r.asDict() for r in spark.read.format("delta").load(training).collect()])
    x = train["sum_2d"].to_numpy(float)
    recent = full[full["ts"] >= pd.Timestamp(end - dt.timedelta(days=1))].reset_index(drop=True)
    assert len(served) == len(recent)
    np.testing.assert_allclose(served["sum_2d"], (recent["sum_2d"] - x.mean()) / x.std(ddof=0), rtol=1e-9)
    n = train["n_1d"].to_numpy(float)
    np.testing.assert_allclose(served["n_1d"], (recent["n_1d"] - n.min()) / (n.max() - n.min()), rtol=1e-12)
    assert set(served["_preprocessing_version"]) == {1}

    # apply a pinned version to another table
    assert (
        main(
            [
                "apply",
                str(path),
                "--on",
                training,
                "--out",
                str(project / "warehouse" / "applied"),
                "--state-version",
                "1",
            ]
        )
        == 0
    )
    applied = spark.read.format("delta").load(str(project / "warehouse" / "applied"))
    assert applied.count() == len(train)

    # selection: reports, kept list and the Delta results table; a re-run replaces identical rows
    report = project / "reports"
    args = ["select", str(path), "--training-set", training, "--label", "churned", "--report-dir", str(report)]
    assert main(args) == 0
    assert main(args) == 0
    body = json.loads((report / "selection.json").read_text())
    kept = json.loads((report / "selected_features.json").read_text())["features"]
    assert kept == body["selected"] and any(k.startswith("sum_2d") for k in kept)  # the label is sum_2d > 40
    html = (report / "selection.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html and "http" not in html
    results = spark.read.format("delta").load(f"{config.tables.root}/feature_selection")
    assert results.count() == len(body["features"])
    assert {r["feature"] for r in results.where("decision = 'keep'").collect()} == set(kept)
