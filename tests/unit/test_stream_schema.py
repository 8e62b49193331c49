"""The stream's schema policy (issue 16, point 5): a change on the topic is judged against the
stream's live validated table by the batch ingest's policy (``quality.tables.validated.<source>
.schema``), before the micro-batch writes anything.

The broker tests (tests/streaming) cover the accepted paths end to end (an undeclared field
ignored, a newly declared column added, a type change quarantined per record). Here the refusals:
the live table is written once from the old declaration, then the new declaration's rows are
checked, with no broker and no query.
"""

from __future__ import annotations

import datetime as dt

import pytest

from featuremill.config import load_pipeline
from featuremill.config.streams import stream_of
from featuremill.core.columns import SOURCE_FILE
from featuremill.core.errors import SchemaContractError
from featuremill.streaming.job import _BatchProcessor, stream_paths
from featuremill.streaming.records import stream_valid_rows
from featuremill.transforms.ingest import EVENT_DATE, INGEST_DATE, RULE
from tests.conftest import write_pipeline
from tests.unit.test_stream_config import BASE

STREAM = "    stream: {type: kafka, bootstrap_servers: 127.0.0.1:19092, topic: shop.tx}\n"
REFUSE_ADDITIONS = "quality:\n  tables:\n    validated.tx:\n      schema: {additive: refuse}\n"


def _config(project, *, amount="double", coupon=False, quality=""):
    """test_stream_config's pipeline (tx: event_id, customer_id, ts, amount double) with its edits."""
    columns = f"      amount: {amount}\n" + ("      coupon: string\n" if coupon else "")
    text = BASE.format(stream=STREAM).replace("      amount: double\n", columns, 1) + quality
    return load_pipeline(write_pipeline(project, text), env="local")


def _valid_rows(spark, config, batch_id: int):
    """One classified Kafka record (no failed rule) projected like the stream's validated rows."""
    source = config.source("tx")
    amount = next(c for c in source.columns if c.name == "amount")
    values = {
        "event_id": "e1",
        "customer_id": 1,
        "ts": dt.datetime(2024, 3, 1, 10),
        "amount": 2.5 if amount.type == "double" else "2.5",
        "coupon": "C",
    }
    fields = [f"{c.name} {c.type}" for c in source.columns]
    row = tuple(values[c.name] for c in source.columns)
    schema = ", ".join(
        [*fields, f"{RULE} string", f"{EVENT_DATE} date", f"{INGEST_DATE} date", f"{SOURCE_FILE} string"]
    )
    day = dt.date(2024, 3, 1)
    classified = spark.createDataFrame([(*row, None, day, day, "shop.tx/0/1")], schema)
    return stream_valid_rows(classified, source=source, stream_id="q1", batch_id=batch_id)


def _processor(config):
    paths = stream_paths(config, "activity")
    return _BatchProcessor(config, config.feature_set("activity"), stream_of(config, "tx"), paths), paths


def _live_table(spark, project):
    """The stream's validated table as the old declaration (amount double, no coupon) wrote it."""
    old = _config(project)
    _, paths = _processor(old)
    _valid_rows(spark, old, 0).write.format("delta").save(paths.validated)
    return paths


def test_stream_schema_change_new_column_refused_by_additive_refuse(spark, project):
    paths = _live_table(spark, project)
    config = _config(project, coupon=True, quality=REFUSE_ADDITIONS)
    processor, _ = _processor(config)
    with pytest.raises(SchemaContractError) as info:
        processor._schema_change(spark, _valid_rows(spark, config, 1))
    message = str(info.value)
    assert message.startswith(f"table stream validated.tx ({paths.validated}) (live Delta version 0)"), message
    assert "schema change refused, nothing was written" in message
    assert "'coupon'" in message and "additive" in message
    assert "quality.tables.validated.tx.schema" in message


def test_stream_schema_change_new_column_added_under_the_default_policy(spark, project):
    _live_table(spark, project)
    config = _config(project, coupon=True)
    processor, _ = _processor(config)
    change = processor._schema_change(spark, _valid_rows(spark, config, 1))
    assert change.added == (("coupon", "string"),) and change.widened == () and change.evolves


def test_stream_schema_change_type_change_refused_naming_column_and_types(spark, project):
    paths = _live_table(spark, project)
    config = _config(project, amount="string")
    processor, _ = _processor(config)
    with pytest.raises(SchemaContractError) as info:
        processor._schema_change(spark, _valid_rows(spark, config, 1))
    message = str(info.value)
    assert f"stream validated.tx ({paths.validated})" in message
    assert "'amount'" in message and "double" in message and "string" in message
