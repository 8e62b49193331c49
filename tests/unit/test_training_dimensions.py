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
