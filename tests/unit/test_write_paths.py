"""Writes stay inside the warehouse: every writer of :mod:`featuremill.storage.io` takes the
warehouse root and refuses a path outside it before touching anything, and no other library
module writes to storage directly."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
from pathlib import Path

import pytest

from featuremill.core.errors import WritePathError
from featuremill.storage import io

LIB = Path(__file__).resolve().parents[2] / "lib" / "featuremill"
IO_MODULE = LIB / "storage" / "io.py"

DAY = dt.date(2024, 3, 1)
SCHEMA = "k bigint, d date, v double"

#: Every function of storage/io.py that creates or changes a table or writes a document, with a
#: call of it on ``path`` (the frame ``df``, a session ``spark``) that would succeed inside root.
WRITERS = {
    "replace_where": lambda spark, df, path, root: io.replace_where(
        df, path, root=root, predicate="d = DATE'2024-03-01'"
    ),
    "overwrite": lambda spark, df, path, root: io.overwrite(df, path, root=root),
    "append": lambda spark, df, path, root: io.append(df, path, root=root, merge_schema=True),
    "merge_range": lambda spark, df, path, root: io.merge_range(
        df, path, root=root, keys=["k"], value_columns=["v"], partition_column="d", start=DAY, end=DAY
    ),
    "merge_insert_new": lambda spark, df, path, root: io.merge_insert_new(df, path, "t.k = s.k", root=root),
    "merge_upsert": lambda spark, df, path, root: io.merge_upsert(
        df, path, root=root, on="t.k = s.k", update_condition="NOT (t.v <=> s.v)"
    ),
    "create_if_absent": lambda spark, df, path, root: io.create_if_absent(df, path, root=root),
    "replace_table": lambda spark, df, path, root: io.replace_table(df, path, root=root),
    "add_missing_columns": lambda spark, df, path, root: io.add_missing_columns(spark, path, df, root=root),
    "set_table_properties": lambda spark, df, path, root: io.set_table_properties(
        spark, path, {"featuremill.test": "x"}, root=root
    ),
    "write_text": lambda spark, df, path, root: io.write_text(spark, path, "{}\n", root=root),
}


def test_writers_every_io_writer_requires_a_keyword_root():
    """The list above is every io function that writes (so the tests below cover them all), and
    each takes ``root`` as a required keyword: a caller cannot forget the warehouse."""
    source = IO_MODULE.read_text(encoding="utf-8")
    writing = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            body = ast.get_source_segment(source, node) or ""
            if any(
                marker in body
                for marker in (".save(", "_save(", ".execute()", "_sql_merge(", "ALTER TABLE", ".text(", "open(")
            ):
                writing.add(node.name)
    writing.discard("read_text")  # opens for reading
    assert writing == set(WRITERS)
    for name in WRITERS:
        parameter = inspect.signature(getattr(io, name)).parameters.get("root")
        assert parameter is not None, name
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default is inspect.Parameter.empty, name


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writer_refuses_a_path_outside_its_root_before_writing(spark, tmp_path, name):
    root = tmp_path / "warehouse"
    root.mkdir()
    df = spark.createDataFrame([(1, DAY, 1.0)], SCHEMA)
    for outside in (tmp_path / "elsewhere" / "t", root / ".." / "escaped" / "t"):
        with pytest.raises(WritePathError, match="outside the warehouse root") as info:
            WRITERS[name](spark, df, str(outside), str(root))
        assert str(outside) in str(info.value)
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "escaped").exists()
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("name", ["append", "merge_insert_new", "add_missing_columns", "set_table_properties"])
def test_writer_leaves_an_existing_table_outside_its_root_unchanged(spark, tmp_path, name):
    """A table that exists outside the warehouse (a symlinked folder, a hand-made table) is not
    changed either: no new commit."""
    root = tmp_path / "warehouse"
    root.mkdir()
    outside = str(tmp_path / "elsewhere" / "t")
    spark.createDataFrame([(1, DAY, 1.0)], SCHEMA).write.format("delta").save(outside)
    df = spark.createDataFrame([(2, DAY, 2.0)], SCHEMA).selectExpr("*", "'x' AS extra")
    with pytest.raises(WritePathError):
        WRITERS[name](spark, df, outside, str(root))
    assert io.delta_version(spark, outside) == 0
    assert [tuple(r) for r in spark.read.format("delta").load(outside).collect()] == [(1, DAY, 1.0)]


def test_writer_symlink_out_of_the_warehouse_is_refused(spark, tmp_path):
    """A folder inside the warehouse that is a symlink to a place outside it counts as outside."""
    root = tmp_path / "warehouse"
    (root / "shop").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (root / "shop" / "run_log").symlink_to(target, target_is_directory=True)
    df = spark.createDataFrame([(1, DAY, 1.0)], SCHEMA)
    with pytest.raises(WritePathError):
        io.append(df, str(root / "shop" / "run_log"), root=str(root), merge_schema=True)
    assert list(target.iterdir()) == []
    io.append(df, str(root / "shop" / "kept"), root=str(root), merge_schema=True)  # a real folder inside: written
    assert [tuple(r) for r in spark.read.format("delta").load(str(root / "shop" / "kept")).collect()] == [(1, DAY, 1.0)]


# ---- no direct writes outside storage/io.py --------------------------------------------------

#: DataFrameWriter / DeltaTable calls that write a table.
WRITE_CALLS = {"save", "saveAsTable", "insertInto"}
#: SQL statements that change a table, when they start a string passed to ``spark.sql``.
WRITE_SQL = (
    "ALTER",
    "MERGE",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "REPLACE",
    "DROP",
    "OPTIMIZE",
    "VACUUM",
    "RESTORE",
)
#: (module, line text) of writes allowed outside io: the benchmarks' ``format("noop")`` writes,
#: which run a plan to completion and write nothing anywhere (no path, no table).
ALLOWED = {
    ("bench/common.py", 'df.write.format("noop").mode("overwrite").save()'),
    ("bench/pit.py", 'frames[result.method]().write.format("noop").mode("overwrite").save()'),
    # the benchmark's hand-written floor is the job without featuremill around it, by definition
    ("bench/floor.py", "writer.save(path)"),
    # the class archive's workload writes a temporary folder of its own, to load what a job's writes load
    ("core/jvm_archive.py", 'events.write.format("delta").partitionBy("day").save(table)'),
    ("core/jvm_archive.py", "merge.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()"),
    (
        "core/jvm_archive.py",
        'day.write.format("delta").mode("overwrite").option("replaceWhere", "day = \'2023-11-14\'").save(table)',
    ),
}


def _sql_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def direct_writes(source: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each call in ``source`` that writes storage without storage/io.py."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        # DeltaTable's merge builder runs with .execute() (no arguments; a DB-API cursor's takes SQL)
        merge_execute = attr == "execute" and not node.args and not node.keywords
        sql_write = attr == "sql" and node.args and _sql_text(node.args[0]).lstrip().upper().startswith(WRITE_SQL)
        if attr in WRITE_CALLS or merge_execute or sql_write:
            found.append((node.lineno, ast.get_source_segment(source, node) or attr))
    return found


def test_direct_writes_finds_each_kind_of_write():
    """The scanner itself: each way of writing is found, reads and other calls are not."""
    source = (
        'df.write.format("delta").mode("append").save(path)\n'
        "df.write.saveAsTable('t')\n"
        "df.write.insertInto('t')\n"
        "DeltaTable.forPath(spark, p).alias('t').merge(s, on).whenNotMatchedInsertAll().execute()\n"
        "spark.sql(f'ALTER TABLE {ident} SET TBLPROPERTIES (x)')\n"
        "spark.sql(f'  merge into {ident} t using v s on x')\n"
        "spark.read.format('delta').load(path)\n"
        "spark.sql(f'DESCRIBE HISTORY {ident}')\n"
        "cursor.execute('SELECT 1')\n"
        "spark.sql('SHOW TBLPROPERTIES x')\n"
    )
    assert [line for line, _ in direct_writes(source)] == [1, 2, 3, 4, 5, 6]


def test_direct_writes_none_outside_storage_io():
    offenders = []
    for path in sorted(LIB.rglob("*.py")):
        relative = path.relative_to(LIB).as_posix()
        if relative == "storage/io.py":
            continue
        for line, code in direct_writes(path.read_text(encoding="utf-8")):
            if (relative, code) not in ALLOWED:
                offenders.append(f"{relative}:{line}: {code}")
    assert offenders == [], "write through featuremill.storage.io (root-checked) instead:\n" + "\n".join(offenders)
    # the allow-list is not stale: each allowed write is still there
    for relative, code in ALLOWED:
        assert code in (LIB / relative).read_text(encoding="utf-8"), relative
