"""Asking a training set for entity-level dimension columns: parsing and resolving the request.

The demo pipeline's ``customer_activity`` joins ``customers`` (segment, country) per entity and
``products`` (category, unit_price) per event; ``product_demand`` joins no dimension per entity.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from featuremill.config import load_pipeline
from featuremill.core.errors import TrainingSetError
from featuremill.pipelines.training_set import (
    DimensionColumnRequest,
    _apply_selection,
    check_dimension_column_names,
    parse_dimension_columns,
    resolve_dimension_columns,
)

DEMO = Path(__file__).resolve().parents[2] / "conf" / "pipelines" / "demo.yaml"


@pytest.fixture(scope="module")
def demo():
    return load_pipeline(DEMO, env="local")


def test_parse_dimension_columns_plain_and_qualified():
    assert parse_dimension_columns(" segment, customer_activity.country ,") == (
        DimensionColumnRequest("segment"),
        DimensionColumnRequest("country", "customer_activity"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b.c", "is not COLUMN or FEATURE_SET.COLUMN"),
        ("customer_activity.", "is not COLUMN or FEATURE_SET.COLUMN"),
        (" , ", "give at least one column"),
        ("segment,customer_activity.segment", "a column is listed twice"),
    ],
)
def test_parse_dimension_columns_refuses_malformed(text, message):
    with pytest.raises(TrainingSetError, match=message):
        parse_dimension_columns(text)


def test_resolve_dimension_columns_one_entry_per_join_in_the_order_asked(demo):
    requests = parse_dimension_columns("country,customer_activity.segment")
    assert resolve_dimension_columns(demo, ["product_demand", "customer_activity"], requests) == [
        {
            "feature_set": "customer_activity",
            "dimension": "customers",
            "on": ["customer_id"],
            "columns": ["country", "segment"],
            "dimension_columns": ["country", "segment"],
        }
    ]


def test_resolve_dimension_columns_refuses_unknown_column(demo):
    with pytest.raises(TrainingSetError, match=r"tier is not a dimension column; .* customer_activity.segment"):
        resolve_dimension_columns(demo, ["customer_activity"], parse_dimension_columns("tier"))


def test_resolve_dimension_columns_refuses_event_level_column(demo):
    with pytest.raises(
        TrainingSetError, match=r"category is joined at event level .* customer_activity \(dimension products\)"
    ):
        resolve_dimension_columns(demo, ["customer_activity"], parse_dimension_columns("category"))


def test_resolve_dimension_columns_refuses_feature_set_not_requested(demo):
    with pytest.raises(TrainingSetError, match="'customer_activity' is not among --features"):
        resolve_dimension_columns(demo, ["product_demand"], parse_dimension_columns("customer_activity.segment"))


def test_resolve_dimension_columns_refuses_sets_without_entity_joins(demo):
    with pytest.raises(TrainingSetError, match="the requested feature sets join no dimension with level: entity"):
        resolve_dimension_columns(demo, ["product_demand"], parse_dimension_columns("segment"))


TWO_SETS = """\
pipeline: two
sources:
  tx:
    kind: events
    format: csv
    path: tx
    partition_column: landing_date
    event_time: ts
    key: id
    columns:
      id: string
      customer: bigint
      store: bigint
      ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}
  customers:
    kind: dimension
    format: csv
    path: customers
    partition_column: snapshot_date
    key: customer
    columns: {customer: bigint, segment: string}
  stores:
    kind: dimension
    format: csv
    path: stores
    partition_column: snapshot_date
    key: store
    columns: {store: bigint, segment: string}
feature_sets:
  - name: by_customer
    description: per customer
    owner: tests
    version: 1
    source: tx
    entity: customer
    joins:
      - {dimension: customers, on: customer, columns: [segment], level: entity}
    features:
      - {name: n_customer_1d, function: count, window: 1d, description: purchases}
  - name: by_store
    description: per store
    owner: tests
    version: 1
    source: tx
    entity: store
    joins:
      - {dimension: stores, on: store, columns: [segment], level: entity}
    features:
      - {name: n_store_1d, function: count, window: 1d, description: purchases}
  - name: by_store_renamed
    description: per store, the segment renamed
    owner: tests
    version: 1
    source: tx
    entity: store
    joins:
      - {dimension: stores, on: store, columns: {segment: store_segment}, level: entity}
    features:
      - {name: n_store_renamed_1d, function: count, window: 1d, description: purchases}
"""


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    (root / "conf" / "pipelines").mkdir(parents=True)
    (root / "conf" / "env").mkdir(parents=True)
    (root / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    path = root / "conf" / "pipelines" / "two.yaml"
    path.write_text(TWO_SETS)
    return load_pipeline(path, env="local")


def test_resolve_dimension_columns_refuses_a_name_two_dimensions_join(two_sets):
    with pytest.raises(TrainingSetError, match=r"segment is joined from different dimensions .* FEATURE_SET.COLUMN"):
        resolve_dimension_columns(two_sets, ["by_customer", "by_store"], parse_dimension_columns("segment"))


def test_resolve_dimension_columns_qualified_name_picks_the_set(two_sets):
    assert resolve_dimension_columns(
        two_sets, ["by_customer", "by_store"], parse_dimension_columns("by_store.segment")
    ) == [
        {
            "feature_set": "by_store",
            "dimension": "stores",
            "on": ["store"],
            "columns": ["segment"],
            "dimension_columns": ["segment"],
        }
    ]


def test_check_dimension_column_names_refuses_a_spine_or_feature_name():
    dims = [{"feature_set": "a", "dimension": "customers", "on": ["customer"], "columns": ["segment"]}]
    check_dimension_column_names(["customer", "label_ts"], [{"name": "a", "features": ["n_1d"]}], dims)
    with pytest.raises(TrainingSetError, match="segment .* is already a column of the spine"):
        check_dimension_column_names(["customer", "segment"], [{"name": "a", "features": ["n_1d"]}], dims)
    with pytest.raises(TrainingSetError, match="segment .* is already a column of feature set 'a'"):
        check_dimension_column_names(["customer"], [{"name": "a", "features": ["segment"]}], dims)


def test_apply_selection_accepts_requested_dimension_columns_only():
    entries = [{"name": "a", "features": ["n_1d", "sum_1d"]}]
    kept, _, _, selection = _apply_selection(
        entries, [None], [3], selected=["n_1d", "segment"], source="sel.json", dimension_columns=["segment"]
    )
    assert kept == [{"name": "a", "features": ["n_1d"]}]
    assert selection == {"file": "sel.json", "features": ["n_1d", "segment"], "feature_sets_left_out": []}
    with pytest.raises(TrainingSetError, match="segment not a feature .* only with --dimension-columns"):
        _apply_selection(
            entries, [None], [3], selected=["n_1d", "segment"], source="sel.json", entity_join_columns=["segment"]
        )


def test_resolve_dimension_columns_uses_the_joined_name_of_a_renamed_column(two_sets):
    assert resolve_dimension_columns(two_sets, ["by_store_renamed"], parse_dimension_columns("store_segment")) == [
        {
            "feature_set": "by_store_renamed",
            "dimension": "stores",
            "on": ["store"],
            "columns": ["store_segment"],
            "dimension_columns": ["segment"],
        }
    ]
    with pytest.raises(TrainingSetError, match="segment is not a dimension column; .* by_store_renamed.store_segment"):
        resolve_dimension_columns(two_sets, ["by_store_renamed"], parse_dimension_columns("segment"))
