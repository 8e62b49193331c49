"""The feature job end to end: incremental == full recompute, re-runs, late events, joins, plans."""

from __future__ import annotations

import contextlib
import datetime as dt
import io as stdio
import random

import pytest
from chispa import assert_df_equality

from featuremill.core.errors import BroadcastTooLargeError
from featuremill.pipelines.build_features import build_feature_frame, run_features
from featuremill.pipelines.ingest import run_ingest
from featuremill.storage import io
from tests.integration.shop import load, make_project, write_dimensions, write_landing

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow

DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(5)]


def _landings(seed: int = 3) -> dict[dt.date, list[str]]:
    """~60 events for customers 1-3 over 5 days: ties, late arrivals, a product missing from the dimension."""
    rng = random.Random(seed)
    out: dict[dt.date, list[str]] = {d: [] for d in DAYS}
    n = 0
    for day in DAYS:
        for _ in range(12):
            n += 1
            minute = rng.randrange(0, 24 * 60, 30)  # half-hour grid: ties happen
            ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
            customer = rng.choice([1, 1, 2, 3])
            product = rng.choice([10, 11, 12])
            landing = day
            if rng.random() < 0.15 and day < DAYS[-1]:
                landing = day + dt.timedelta(days=rng.choice([1, 2]))  # a late event
                landing = min(landing, DAYS[-1])
            out[landing].append(
                f"e{n:03d},{customer},{product},{ts:%Y-%m-%d %H:%M:%S},{rng.randint(1, 90)}.50,"
                f"{rng.choice(['web', 'app'])}"
            )
    return out


def _project(root, *, customers_mb: float = 16):
    make_project(root, customers_mb=customers_mb)
    write_dimensions(root, customers=["1,gold", "2,silver"], products=["10,toys", "11,books"])
    for day, lines in _landings().items():
        write_landing(root, day.isoformat(), lines)
    return load(root)


def _features(spark, config):
    return spark.read.format("delta").load(config.tables.features("cust"))


@pytest.fixture(scope="module")
def full_shop(spark, tmp_path_factory):
    """The shop ingested and featurised over all of DAYS in one run each (the full recompute),
    built once for the tests that only read it or re-run a part of it."""
    full = _project(tmp_path_factory.mktemp("features_job") / "full")
    run_ingest(spark, full, start=DAYS[0], end=DAYS[-1])
    run_features(spark, full, start=DAYS[0], end=DAYS[-1])
    return full


def test_run_features_daily_runs_equal_full_recompute(spark, tmp_path, full_shop):
    daily = _project(tmp_path / "daily")
    late_seen = []
    for day in DAYS:
        run_ingest(spark, daily, start=day, end=day)
        result = run_features(spark, daily, start=day, end=day)[0]
        late_seen.append(result.compute_start < day)
    assert any(late_seen), "the data must contain late events that force a recompute of earlier dates"

    actual = _features(spark, daily)
    expected = _features(spark, full_shop)
    assert actual.count() == expected.count() > 40
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_column_order=True)


def test_run_features_late_event_updates_earlier_rows(spark, tmp_path):
    config = _project(tmp_path)
    make_late = [("e900", "2024-03-02 08:00:00")]
    write_landing(tmp_path, "2024-03-05", [f"{eid},1,10,{ts},100.50,web" for eid, ts in make_late], name="late.csv")
    # the first four days in one run each; the daily run of the fifth brings the late event
    run_ingest(spark, config, start=DAYS[0], end=DAYS[3])
    run_features(spark, config, start=DAYS[0], end=DAYS[3])
    before = {r["event_ts"]: r for r in _features(spark, config).where("customer_id = 1").collect()}
    run_ingest(spark, config, start=DAYS[4], end=DAYS[4])
    result = run_features(spark, config, start=DAYS[4], end=DAYS[4])[0]
    assert result.compute_start <= dt.date(2024, 3, 2)
    after = {r["event_ts"]: r for r in _features(spark, config).where("customer_id = 1").collect()}
    late_ts = dt.datetime(2024, 3, 2, 8, 0)
    assert late_ts in after and late_ts not in before
    # Every later row of customer 1 within one day of the late event counts it.
    for ts, row in after.items():
        if late_ts < ts <= late_ts + dt.timedelta(days=1) and ts in before:
            assert row["n_1d"] == before[ts]["n_1d"] + 1
        if ts < late_ts:
            assert row == before[ts]


def test_run_features_rerun_is_a_no_op(spark, full_shop):
    config = full_shop
    before = sorted(tuple(r) for r in _features(spark, config).collect())
    again = run_features(spark, config, start=DAYS[2], end=DAYS[2])[0]
    assert (again.rows_inserted, again.rows_updated, again.rows_deleted) == (0, 0, 0)
    assert sorted(tuple(r) for r in _features(spark, config).collect()) == before


def test_build_feature_frame_joins_dimensions_with_missing_keys(spark, full_shop):
    config = full_shop
    rows = _features(spark, config).collect()
    segments = {(r["customer_id"], r["segment"]) for r in rows}
    assert segments == {(1, "gold"), (2, "silver"), (3, None)}  # customer 3 is not in the dimension
    # toys_n_2d counts only product 10 (toys); product 12 is missing from the dimension: no category.
    validated = spark.read.format("delta").load(config.tables.validated("tx")).collect()
    for row in rows[:25]:
        t = row["event_ts"]
        expected = sum(
            1
            for e in validated
            if e["customer_id"] == row["customer_id"]
            and e["product_id"] == 10
            and t - dt.timedelta(days=2) < e["event_ts"] <= t
        )
        assert row["toys_n_2d"] == expected


def test_run_features_refuses_a_dimension_over_the_broadcast_limit(spark, tmp_path):
    config = _project(tmp_path, customers_mb=0.0001)
    run_ingest(spark, config, start=DAYS[0], end=DAYS[0])
    with pytest.raises(
        BroadcastTooLargeError,
        match=r"dimension 'customers' is .* above its broadcast limit.*"
        r"sources.customers.max_broadcast_mb",
    ):
        run_features(spark, config, start=DAYS[0], end=DAYS[0])
    assert io.delta_version(spark, config.tables.features("cust")) is None


def test_feature_plan_has_one_exchange_and_no_python(spark, full_shop):
    config = full_shop
    fs = config.feature_set("cust")
    events = spark.read.format("delta").load(config.tables.validated("tx"))
    dims = {
        name: spark.read.format("delta").load(config.tables.validated(name)).hint("broadcast")
        for name in ("customers", "products")
    }
    frame = build_feature_frame(events, config=config, feature_set=fs, dimensions=dims, start=DAYS[0], end=DAYS[-1])
    buffer = stdio.StringIO()
    with contextlib.redirect_stdout(buffer):
        frame.explain()
    plan = buffer.getvalue()
    shuffles = [line for line in plan.splitlines() if "Exchange hashpartitioning" in line]
    assert len(shuffles) == 1, plan
    assert plan.count("Sort [") == 1, plan
    assert plan.count("BroadcastHashJoin") == 2, plan
    for python_node in (
        "BatchEvalPython",
        "ArrowEvalPython",
        "PythonUDF",
        "MapInPandas",
        "FlatMapGroupsInPandas",
        "PythonMapInArrow",
    ):
        assert python_node not in plan


WEEK = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(8)]


def _week_project(root):
    """8 days; customer 4 buys only in the first days, customer 6 much on days 4-5 (inside the
    last run's lookback, not in its range), customer 5 only on the last day: the last day's run
    has entities to leave out and one with no history; a late event lands on the last day for
    day 6."""
    make_project(root)
    write_dimensions(root, customers=["1,gold", "2,silver"], products=["10,toys", "11,books"])
    rng = random.Random(7)
    n = 0
    for day in WEEK:
        lines = []
        customers = [1, 2, 3] + ([4] if day <= WEEK[2] else []) + ([5] if day == WEEK[-1] else [])
        for customer in customers + ([6] if day in WEEK[3:5] else []):
            for _ in range(15 if customer == 6 else 3):
                n += 1
                ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=rng.randrange(0, 24 * 60, 30))
                lines.append(
                    f"w{n:03d},{customer},{rng.choice([10, 11])},{ts:%Y-%m-%d %H:%M:%S},{rng.randint(1, 90)}.25,web"
                )
        if day == WEEK[-1]:
            lines.append(f"w999,2,10,{WEEK[5]} 23:30:00,12.75,app")  # late: event date day 6
        write_landing(root, day.isoformat(), lines)
    return load(root)


def _week_project_with_customer_7(root):
    """:func:`_week_project` plus customer 7, who buys on days 6 and 7 only: inside the last run's
    recompute range (the late event of day 6), with no event dated on the last day and none landed
    on it."""
    config = _week_project(root)
    for i, day in enumerate(WEEK[5:7]):
        write_landing(root, day.isoformat(), [f"x{i},7,10,{day} 12:00:00,40.25,web"], name="customer-7.csv")
    return config


def test_daily_run_with_late_events_recomputes_only_the_entities_they_touch(spark, tmp_path):
    """The late event of day 6 pulls days 6-7 into the last day's run. Of those days only the
    entities with an event dated on the last day or a late event are recomputed: customer 7's
    stored rows are kept as they are (a value planted in one of them survives the run), customer
    2's, whose late event they must count, are recomputed; every other row equals a full
    recompute's."""
    from pyspark.sql import functions as F

    daily = _week_project_with_customer_7(tmp_path / "daily")
    run_ingest(spark, daily, start=WEEK[0], end=WEEK[-2])
    run_features(spark, daily, start=WEEK[0], end=WEEK[-2])
    table = daily.tables.features("cust")
    planted = F.expr(f"customer_id = 7 AND event_date = DATE'{WEEK[5]}'")
    assert spark.read.format("delta").load(table).where(planted).count() == 1
    # n_1d = 999: no recompute gives it, so it stays only where the run keeps a stored row
    spark.sql(f"UPDATE delta.`{table}` SET n_1d = 999 WHERE customer_id = 7 AND event_date = DATE'{WEEK[5]}'")
    day_7_of_2 = F.expr(f"customer_id = 2 AND event_date = DATE'{WEEK[6]}'")
    before_2 = {r["event_ts"]: r["amount_sum_2d"] for r in _features(spark, daily).where(day_7_of_2).collect()}
    assert before_2
    run_ingest(spark, daily, start=WEEK[-1], end=WEEK[-1])
    result = run_features(spark, daily, start=WEEK[-1], end=WEEK[-1])[0]
    assert result.compute_start == WEEK[5]
    log = spark.read.format("delta").load(daily.tables.run_log).where("job = 'features'").orderBy("started_at")
    details = log.collect()[-1]["details"].replace("'", '"')
    assert '"late_range": "changed_entities_only"' in details, details

    full = _week_project_with_customer_7(tmp_path / "full")
    run_ingest(spark, full, start=WEEK[0], end=WEEK[-1])
    run_features(spark, full, start=WEEK[0], end=WEEK[-1])
    actual, expected = _features(spark, daily), _features(spark, full)
    assert [r["n_1d"] for r in actual.where(planted).collect()] == [999]
    assert [r["n_1d"] for r in expected.where(planted).collect()] == [1]
    assert actual.where("customer_id = 7").count() == expected.where("customer_id = 7").count() == 2
    # customer 2's rows of day 7 count the late event (23:30 on day 6) in their 2-day sums: recomputed
    assert {r["event_ts"]: r["amount_sum_2d"] for r in actual.where(day_7_of_2).collect()} != before_2
    assert_df_equality(
        actual.where(~planted), expected.where(~planted), ignore_row_order=True, ignore_column_order=True
    )
    assert_df_equality(
        actual.where(planted).drop("n_1d"),
        expected.where(planted).drop("n_1d"),
        ignore_row_order=True,
        ignore_column_order=True,
    )


def test_daily_run_computes_active_entities_from_pruned_partitions(spark, tmp_path):
    """The last day's run computes only the entities with events in its recompute range, from the
    partitions its longest window needs, and its rows equal a full recompute's."""
    from featuremill.pipelines.build_features import events_of_active_entities

    daily = _week_project(tmp_path / "daily")
    run_ingest(spark, daily, start=WEEK[0], end=WEEK[-1])
    run_features(spark, daily, start=WEEK[0], end=WEEK[-2])
    result = run_features(spark, daily, start=WEEK[-1], end=WEEK[-1])[0]
    assert result.compute_start == WEEK[5]  # the late event of day 6
    log = spark.read.format("delta").load(daily.tables.run_log).where("job = 'features'").orderBy("started_at")
    assert '"active_entities_only": "broadcast"' in log.collect()[-1]["details"].replace("'", '"')

    full = _week_project(tmp_path / "full")
    run_ingest(spark, full, start=WEEK[0], end=WEEK[-1])
    run_features(spark, full, start=WEEK[0], end=WEEK[-1])
    actual, expected = _features(spark, daily), _features(spark, full)
    assert actual.where("customer_id IN (4, 5, 6)").select("customer_id").distinct().count() == 3
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_column_order=True)

    # The input the job computes from, for that run: lookback 2 days before day 6 (2d windows).
    validated = spark.read.format("delta").load(daily.tables.validated("tx"))
    read_start = WEEK[5] - dt.timedelta(days=2)
    events = validated.where(f"event_date BETWEEN '{read_start}' AND '{WEEK[-1]}'")
    active = events_of_active_entities(events, entity=["customer_id"], start=WEEK[5], end=WEEK[-1], broadcast=True)
    # 4 has no events since day 3, 6 none in the range (days 6-8): both left out, with all their rows
    assert sorted({r["customer_id"] for r in active.collect()}) == [1, 2, 3, 5]
    assert active.count() == events.where("customer_id NOT IN (4, 6)").count() < events.count()
    buffer = stdio.StringIO()
    with contextlib.redirect_stdout(buffer):
        active.explain("formatted")
    plan = buffer.getvalue()
    partition_filters = [line for line in plan.splitlines() if line.strip().startswith("PartitionFilters")]
    # Both scans (the events, and the keys of the range) are pruned by the event-date partition.
    assert len(partition_filters) == 2, plan
    assert "(event_date#" in partition_filters[0] and str(read_start) in partition_filters[0], plan
    assert any(str(WEEK[5]) in line for line in partition_filters), plan
    assert "BroadcastHashJoin" in plan and "LeftSemi" in plan, plan
    assert len([line for line in plan.splitlines() if "Exchange hashpartitioning" in line]) <= 1, plan
