"""Fixtures of the fault-injection suite: one ingested shop, built once and copied per test."""

from __future__ import annotations

import pytest

from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from tests.faults.helpers import D1, D2, copy_warehouse, load, shop_project


@pytest.fixture(scope="session")
def ingested_shop_template(spark, tmp_path_factory):
    """A shop project after ``ingest D1..D2`` and ``features D1`` (validated v0, features v0)."""
    root = shop_project(tmp_path_factory.mktemp("faults") / "shop")
    config = load(root)
    run_ingest(spark, config, start=D1, end=D2)
    run_features(spark, config, start=D1, end=D1)
    return root


@pytest.fixture()
def ingested_shop(ingested_shop_template, tmp_path):
    """A private copy of :func:`ingested_shop_template` (Delta tables are plain files locally)."""
    root = tmp_path / "shop"
    copy_warehouse(ingested_shop_template, root)
    return root
