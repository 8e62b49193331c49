"""Schema evolution policy as a pure function of two schemas (no Spark job runs)."""

from __future__ import annotations

import re

import pytest
from pyspark.sql import types as T

from featuremill.config import ColumnSpec
from featuremill.core.errors import SchemaContractError
from featuremill.quality.contracts import compare_schemas, widening_allowed
from featuremill.quality.spec import SchemaPolicy

_TYPES = {
    "string": T.StringType(),
    "smallint": T.ShortType(),
    "tinyint": T.ByteType(),
    "int": T.IntegerType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def _schema(text):
    """``"a int, b decimal(10,2)"`` -> StructType, without a Spark session."""
    fields = []
    for name, typ in re.findall(r"(\w+) (\w+(?:\(\d+,\d+\))?)", text):
        dec = re.match(r"decimal\((\d+),(\d+)\)", typ)
        fields.append(T.StructField(name, T.DecimalType(int(dec[1]), int(dec[2])) if dec else _TYPES[typ]))
    return T.StructType(fields)


LIVE = _schema("id string, qty int, amount double, price decimal(10,2), day date")


def _refused(incoming, policy=None) -> str:
    policy = policy or SchemaPolicy()
    with pytest.raises(SchemaContractError) as info:
        compare_schemas(LIVE, _schema(incoming), policy, table="validated.tx", live_version=7)
    return str(info.value)


def test_compare_schemas_same_schema_changes_nothing():
    change = compare_schemas(LIVE, LIVE, SchemaPolicy(), table="validated.tx")
    assert not change.evolves and change.added == () and change.widened == ()


def test_compare_schemas_new_table_accepts_anything():
    change = compare_schemas(None, _schema("x int"), SchemaPolicy(additive="refuse"), table="t")
    assert not change.evolves


def test_compare_schemas_additive_column_accepted_when_allowed():
    change = compare_schemas(
        LIVE,
        _schema("id string, qty int, amount double, price decimal(10,2), day date, note string"),
        SchemaPolicy(additive="allow"),
        table="validated.tx",
    )
    assert change.added == (("note", "string"),) and change.evolves


def test_compare_schemas_additive_column_refused_when_policy_refuses():
    text = _refused(
        "id string, qty int, amount double, price decimal(10,2), day date, note string", SchemaPolicy(additive="refuse")
    )
    assert "column 'note' (string) is new, but quality.tables.validated.tx.schema.additive is 'refuse'" in text
    assert "(live Delta version 7)" in text


def test_compare_schemas_declared_widening_accepted():
    change = compare_schemas(
        LIVE,
        _schema("id string, qty bigint, amount double, price decimal(12,2), day date"),
        SchemaPolicy(widening=("qty", "price")),
        table="validated.tx",
    )
    assert change.widened == (("qty", "int", "bigint"), ("price", "decimal(10,2)", "decimal(12,2)"))


def test_compare_schemas_undeclared_widening_refused_with_the_fix():
    text = _refused("id string, qty bigint, amount double, price decimal(10,2), day date")
    assert (
        "column 'qty' would widen from int to bigint, but widening is not declared for it. "
        "Fix: add 'qty' to quality.tables.validated.tx.schema.widening"
    ) in text


def test_compare_schemas_narrowing_refused_naming_old_and_new_type():
    text = _refused(
        "id string, qty smallint, amount float, price decimal(10,2), day date", SchemaPolicy(widening=("*",))
    )
    assert "column 'qty' would narrow from int to smallint: narrowing is refused" in text
    assert "Fix: declare 'qty' as int again" in text
    assert "column 'amount' would narrow from double to float" in text


def test_compare_schemas_incompatible_type_change_refused():
    text = _refused("id bigint, qty int, amount double, price decimal(10,2), day date", SchemaPolicy(widening=("*",)))
    assert "column 'id' would change type from string to bigint: only widening is allowed" in text


def test_compare_schemas_dropped_column_refused():
    text = _refused("id string, qty int, amount double, day date")
    assert (
        "column 'price' (decimal(10,2)) is in the table but missing from the incoming data: dropping columns is "
        "refused. Fix: declare 'price' again"
    ) in text


def test_compare_schemas_rename_refused_naming_both_columns():
    text = _refused("id string, quantity int, amount double, price decimal(10,2), day date")
    assert "column 'qty' (int) is missing and 'quantity' (int) is new: renaming columns is refused" in text
    assert "keep the name 'qty'" in text


def test_compare_schemas_lists_every_problem_at_once():
    text = _refused("id string, qty bigint, day timestamp")
    assert text.count("\n  - ") == 4  # qty widening, day type change, amount and price dropped


def test_compare_schemas_declared_output_columns():
    policy = SchemaPolicy(columns=(ColumnSpec("n_7d", "bigint"), ColumnSpec("mean_7d", "double")))
    with pytest.raises(SchemaContractError) as info:
        compare_schemas(None, _schema("n_7d int, other double"), policy, table="features.fs")
    text = str(info.value)
    assert (
        "declared column 'n_7d' is bigint in quality.tables.features.fs.schema.columns but the job produces int" in text
    )
    assert "declared column 'mean_7d' (double) is missing" in text


@pytest.mark.parametrize(
    "old,new,ok",
    [
        ("tinyint", "int", True),
        ("int", "bigint", True),
        ("bigint", "int", False),
        ("float", "double", True),
        ("int", "double", True),
        ("bigint", "double", False),
        ("date", "timestamp_ntz", True),
        ("date", "timestamp", False),
        ("decimal(10,2)", "decimal(12,4)", True),
        ("decimal(10,2)", "decimal(10,4)", False),
        ("int", "decimal(12,2)", True),
        ("int", "decimal(10,2)", False),
        ("string", "int", False),
    ],
)
def test_widening_allowed(old, new, ok):
    assert widening_allowed(old, new) is ok
