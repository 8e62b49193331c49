"""End to end: a job whose table paths lead outside the warehouse writes nothing.

Every path a pipeline's configuration gives featuremill's own tables is ``<warehouse>/<pipeline>/...``
by construction (pipeline names are identifiers, so no ``..``), and user-given outputs are checked
at the command boundary. What remains is the file system: a folder inside the warehouse that is a
symlink to a place outside it. The writers resolve symlinks (:func:`featuremill.storage.io.check_write_path`),
so a real ingest run against such a warehouse is refused at its first write, and the run log's
failure record is refused too.
"""

from __future__ import annotations

import datetime as dt

import pytest

from featuremill.core.errors import WritePathError
from featuremill.pipelines.ingest import run_ingest
from tests.integration.shop import load, make_project, write_dimensions, write_landing


def test_run_ingest_refuses_a_pipeline_folder_linked_outside_the_warehouse(spark, tmp_path):
    make_project(tmp_path)
    write_dimensions(tmp_path)
    write_landing(
        tmp_path, "2024-03-01", ["e1,1,10,2024-03-01 10:00:00,5.0,web", "e2,2,11,2024-03-01 11:00:00,7.5,app"]
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "warehouse").mkdir()
    (tmp_path / "warehouse" / "shop").symlink_to(outside, target_is_directory=True)
    config = load(tmp_path)
    assert config.tables.root == f"{tmp_path}/warehouse/shop"  # the configured path itself looks inside

    with pytest.raises(WritePathError, match="outside the warehouse root") as info:
        run_ingest(spark, config, start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 1))
    assert f"{tmp_path}/warehouse/shop/" in str(info.value)  # names the table path it refused
    assert list(outside.rglob("*")) == []  # nothing written through the link: no table, no run log
