"""A tiny shop pipeline for integration tests: raw CSV files written by hand, one YAML file."""

from __future__ import annotations

import textwrap
from pathlib import Path

from featuremill.config import load_pipeline

HEADER = "event_id,customer_id,product_id,event_ts,amount,channel"

PIPELINE = """\
pipeline: shop
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
      customer_id: {{type: bigint, nullable: false}}
      product_id: bigint
      event_ts: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
      amount: {{type: double, nullable: false}}
      channel: string
  customers:
    kind: dimension
    format: csv
    path: customers
    key: customer_id
    max_broadcast_mb: {customers_mb}
    columns:
      customer_id: bigint
      segment: string
  products:
    kind: dimension
    format: csv
    path: products
    key: product_id
    columns:
      product_id: bigint
      category: string
feature_sets:
  - name: cust
    description: customer features
    owner: tests@example.com
    version: 1
    source: tx
    entity: customer_id
    joins:
      - {{dimension: products, on: product_id, columns: [category], level: event}}
      - {{dimension: customers, on: customer_id, columns: [segment], level: entity}}
    features:
      - {{name: n_1d, function: count, window: 1d, description: events in a day}}
      - {{name: amount_sum_2d, function: sum, column: amount, window: 2d, description: spend over 2 days}}
      - {{name: amount_mean_2d, function: mean, column: amount, window: 2d, description: mean spend}}
      - {{name: amount_std_2d, function: stddev, column: amount, window: 2d, description: spread}}
      - {{name: toys_n_2d, function: count, window: 2d, where: {{column: category, equals: toys}}, description: toys}}
      - {{name: prev_amount, function: lag, column: amount, window: 2d, description: previous amount}}
      - {{name: since_prev, function: time_since_previous, window: 2d, description: gap}}
      - {{name: share_1d_2d, function: ratio, numerator: n_1d, denominator: amount_sum_2d, description: ratio}}
"""


def make_project(root: Path, *, customers_mb: float = 16) -> Path:
    """Write conf/ for the shop pipeline under ``root``; returns the pipeline file."""
    (root / "conf" / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "conf" / "env" / "local.yaml").write_text("warehouse: warehouse\ndata_root: data\n")
    path = root / "conf" / "pipelines" / "shop.yaml"
    path.write_text(PIPELINE.format(customers_mb=customers_mb))
    return path


def load(root: Path):
    return load_pipeline(root / "conf" / "pipelines" / "shop.yaml", env="local")


def write_landing(root: Path, date: str, lines: list[str], *, name: str = "part-0.csv", header: str = HEADER) -> Path:
    folder = root / "data" / "tx" / f"event_date={date}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


def write_dimensions(root: Path, *, customers: list[str] | None = None, products: list[str] | None = None) -> None:
    for name, header, rows in (
        ("customers", "customer_id,segment", customers or ["1,gold", "2,silver"]),
        ("products", "product_id,category", products or ["10,toys", "11,books"]),
    ):
        folder = root / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))


def dedent(text: str) -> str:
    return textwrap.dedent(text)
