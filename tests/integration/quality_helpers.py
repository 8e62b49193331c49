"""A small two-source pipeline (events + a dimension, two feature sets) for the quality tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from featuremill.config import load_pipeline

PIPELINE = """\
pipeline: q
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
      code: string
  customers:
    kind: dimension
    format: csv
    path: customers
    key: cust
    columns: {cust: bigint, segment: string}
feature_sets:
  - name: cust_fs
    description: per customer
    owner: o
    version: 1
    source: tx
    entity: cust
    features:
      - {name: n_1d, function: count, window: 1d, description: d}
      - {name: amount_sum_1d, function: sum, column: amount, window: 1d, description: d}
  - name: channel_fs
    description: per channel
    owner: o
    version: 1
    source: tx
    entity: channel
    features:
      - {name: channel_n_1d, function: count, window: 1d, description: d}
"""

TX_HEADER = "id,cust,ts,amount,channel,code"


def write_pipeline(project: Path, quality: str = "", name: str = "q.yaml", extra_columns: str = "") -> Path:
    text = PIPELINE
    if extra_columns:
        text = text.replace("      code: string\n", "      code: string\n" + textwrap.indent(extra_columns, "      "))
    if quality:
        text += "quality:\n" + textwrap.indent(textwrap.dedent(quality), "  ")
    path = project / "conf" / "pipelines" / name
    path.write_text(text)
    return path


def load(project: Path, name: str = "q.yaml"):
    return load_pipeline(project / "conf" / "pipelines" / name, env="local")


def write_tx(project: Path, landing: str, rows: list[str], header: str = TX_HEADER) -> None:
    folder = project / "data" / "tx" / f"event_date={landing}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


def write_customers(project: Path, rows: list[str]) -> None:
    folder = project / "data" / "customers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("cust,segment\n" + "\n".join(rows) + "\n")


def versions(spark, config) -> dict[str, int | None]:
    from featuremill.storage import io

    t = config.tables
    paths = {f"validated.{s.name}": t.validated(s.name) for s in config.sources}
    paths["quarantine"] = t.quarantine
    paths.update({f"features.{f.name}": t.features(f.name) for f in config.feature_sets})
    return {name: io.delta_version(spark, path) for name, path in paths.items()}
