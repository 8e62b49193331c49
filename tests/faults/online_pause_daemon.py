"""A PySpark daemon module for the materialization kill test (``spark.python.daemon.module``).

``tests/faults/kill_child.py`` starts ``featuremill materialize`` with this module as its Python
daemon. It wraps Feast's SQLite ``online_write_batch`` and then runs PySpark's own daemon, so
every worker it forks has the wrapper: the first online-store write of a task goes through to
SQLite, then the worker appends ``<view> <rows>`` to the file named by
``FEATUREMILL_PAUSE_AFTER_WRITE`` and blocks. The test waits for that line and kills the driver
with SIGKILL while the online write is half done: one batch in the store, the others never
written, nothing recorded. The executor side of the write runs in these worker processes, not in
the driver, so a driver-side observer cannot stop it at that point. (PySpark only accepts worker
modules named ``pyspark.*``; the daemon module has no such limit.)
"""

from __future__ import annotations

import os
import time

from feast.infra.online_stores.sqlite import SqliteOnlineStore
from pyspark.daemon import manager

_write = SqliteOnlineStore.online_write_batch


def _write_then_pause(self, config, table, data, progress, *args, **kwargs):
    _write(self, config, table, data, progress, *args, **kwargs)
    with open(os.environ["FEATUREMILL_PAUSE_AFTER_WRITE"], "a") as marker:
        marker.write(f"{table.name} {len(data)}\n")
    # the driver is killed long before; bounded so that a stray worker cannot live on (PySpark's
    # daemon also sends SIGHUP to its workers when the JVM that started it dies)
    time.sleep(300)


SqliteOnlineStore.online_write_batch = _write_then_pause

if __name__ == "__main__":
    manager()
