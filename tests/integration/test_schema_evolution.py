"""The schema policy inside the jobs: refusals change no table, accepted changes reach Delta."""

from __future__ import annotations

import datetime as dt

import pytest

from featuremill.core.errors import SchemaContractError
from featuremill.pipelines.build_features import run_features
from featuremill.pipelines.ingest import run_ingest
from tests.integration.quality_helpers import TX_HEADER, load, versions, write_customers, write_pipeline, write_tx

# Runs the pipeline's jobs: whole suite only, not the fast lane (-m "not slow").
pytestmark = pytest.mark.slow

D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


def test_schema_policy_refuses_before_writing_and_applies_accepted_changes(spark, project):
    write_pipeline(project, extra_columns="qty: int\n")
    write_customers(project, ["1,gold", "2,silver"])
    write_tx(
        project,
        "2024-01-02",
        ["a1,1,2024-01-02 10:00:00,10.0,web,C1,3", "a2,2,2024-01-02 11:00:00,20.0,app,C2,4"],
        header=TX_HEADER + ",qty",
    )
    config = load(project)
    run_ingest(spark, config, start=D1, end=D1)
    run_features(spark, config, start=D1, end=D1)
    before = versions(spark, config)

    # qty declared bigint without widening allowed, and code dropped: refused, nothing written.
    write_pipeline(project, extra_columns="qty: bigint\n", name="changed.yaml")
    text = (project / "conf" / "pipelines" / "changed.yaml").read_text().replace("      code: string\n", "")
    (project / "conf" / "pipelines" / "changed.yaml").write_text(text)
    write_tx(project, "2024-01-03", ["b1,1,2024-01-03 10:00:00,30.0,web,5"], header="id,cust,ts,amount,channel,qty")
    with pytest.raises(SchemaContractError) as info:
        run_ingest(spark, load(project, "changed.yaml"), start=D2, end=D2)
    message = str(info.value)
    assert message.startswith("table validated.tx (live Delta version 0): schema change refused, nothing was written")
    assert (
        "column 'qty' would widen from int to bigint, but widening is not declared for it. Fix: add 'qty' to "
        "quality.tables.validated.tx.schema.widening"
    ) in message
    assert (
        "column 'code' (string) is in the table but missing from the incoming data: dropping columns is refused. "
        "Fix: declare 'code' again"
    ) in message
    assert versions(spark, config) == before

    # Widening declared, a new column (additive: allow is the default) and a new feature: accepted.
    evolved = write_pipeline(
        project,
        """\
        tables:
          validated.tx:
            schema: {widening: [qty]}
        """,
        extra_columns="qty: bigint\nnote: string\n",
        name="evolved.yaml",
    )
    evolved.write_text(
        evolved.read_text().replace(
            "      - {name: amount_sum_1d, function: sum, column: amount, window: 1d, description: d}\n",
            "      - {name: amount_sum_1d, function: sum, column: amount, window: 1d, description: d}\n"
            "      - {name: amount_max_1d, function: max, column: amount, window: 1d, description: d}\n",
        )
    )
    write_tx(
        project, "2024-01-03", ["b1,1,2024-01-03 10:00:00,30.0,web,C3,5000000000,hello"], header=TX_HEADER + ",qty,note"
    )
    new = load(project, "evolved.yaml")
    run_ingest(spark, new, start=D2, end=D2)
    run_features(spark, new, start=D2, end=D2)

    validated = spark.read.format("delta").load(config.tables.validated("tx"))
    types = dict((f.name, f.dataType.simpleString()) for f in validated.schema.fields)
    assert types["qty"] == "bigint" and types["note"] == "string"
    assert sorted((r.id, r.qty, r.note) for r in validated.collect()) == [
        ("a1", 3, None),
        ("a2", 4, None),
        ("b1", 5_000_000_000, "hello"),
    ]
    feats = spark.read.format("delta").load(config.tables.features("cust_fs"))
    # Without schema evolution Delta's MERGE would silently drop the new feature column.
    assert sorted((r.cust, str(r.ts), r.amount_max_1d) for r in feats.collect()) == [
        (1, "2024-01-02 10:00:00", None),
        (1, "2024-01-03 10:00:00", 30.0),
        (2, "2024-01-02 11:00:00", None),
    ]
