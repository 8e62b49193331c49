"""The online store: reachability, the executor-side writer, and lookups for checks.

The writer runs inside ``mapInArrow`` on the executors: each task builds Feast's
``RepoConfig`` from the repository's ``feature_store.yaml`` and the feature view from its
registry proto (both shipped as bytes from the driver, so executors need no registry access),
converts each Arrow batch with Feast's own converter and calls the online store's
``online_write_batch``, the call Feast's materialization makes. Only one count per batch comes
back to the driver.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from featuremill.config import OnlineStoreSpec
from featuremill.core.errors import OnlineStoreError

log = logging.getLogger(__name__)

#: Rows per ``online_write_batch`` call (one Arrow batch).
DEFAULT_BATCH_ROWS = 1000


def store_address(store: OnlineStoreSpec, repo: str | Path) -> str:
    """``redis at 127.0.0.1:6399`` / ``sqlite at /abs/repo/data/online_store.db``."""
    if store.type == "redis":
        return f"redis at {store.address}"
    path = Path(store.path)
    return f"sqlite at {path if path.is_absolute() else Path(repo).resolve() / path}"


def check_reachable(store: OnlineStoreSpec, repo: str | Path, *, timeout_s: float = 3.0) -> None:
    """Raise :class:`OnlineStoreError` (one line: store, address, fix) unless the store answers.

    Redis: a TCP connection and ``PING``; SQLite: the database folder exists and is writable.
    """
    if store.type == "redis":
        host, _, port = store.address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
                sock.settimeout(timeout_s)
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError as exc:
            raise OnlineStoreError(
                f"online store redis at {store.address} is not reachable ({exc.strerror or exc}); start it "
                "(scripts/redis.sh start) or fix online_store.address in the environment file; nothing was materialized"
            ) from None
        if not reply.startswith((b"+PONG", b"-NOAUTH")):
            raise OnlineStoreError(
                f"online store redis at {store.address} answered {reply[:40]!r} to PING; check that it is a Redis "
                "server; nothing was materialized"
            )
        return
    import os

    where = store_address(store, repo).split(" at ", 1)[1]
    folder = Path(where).parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OnlineStoreError(
            f"online store sqlite at {where}: folder {folder} is missing or not writable; regenerate the repository "
            "(featuremill feast-repo) or fix online_store.path; nothing was materialized"
        )


def write_batches(frame, *, repo: str, store_yaml: str, view_proto: bytes, join_keys: dict[str, str], batch_rows: int):
    """DataFrame -> DataFrame (``rows`` bigint, one row per Arrow batch written).

    ``frame`` holds the keys, the event-time column and the features of one feature view (one
    row per entity). ``join_keys`` maps key column -> Feast ``ValueType`` name (``INT64``).
    """
    schema = "rows bigint"

    def write(batches):
        import pyarrow as pa
        import yaml
        from feast.feature_view import FeatureView
        from feast.infra.provider import get_provider
        from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto
        from feast.repo_config import RepoConfig
        from feast.utils import _convert_arrow_to_proto
        from feast.value_type import ValueType

        raw = yaml.safe_load(store_yaml)
        if raw.get("online_store", {}).get("type") == "redis":
            # Redis skips a row whose event time is not newer than the stored one; featuremill's rows
            # are already the latest per entity, and a corrected row (late data recomputed at the
            # same event time) must replace the stored one, so write without that check.
            raw["online_store"] = {**raw["online_store"], "skip_dedup": True}
        config = RepoConfig(**raw)
        config.repo_path = Path(repo)
        view = FeatureView.from_proto(FeatureViewProto.FromString(view_proto))
        keys = {name: ValueType[type_name] for name, type_name in join_keys.items()}
        provider = get_provider(config)
        for batch in batches:
            for start in range(0, batch.num_rows, batch_rows):
                chunk = batch.slice(start, batch_rows)
                rows = _convert_arrow_to_proto(chunk, view, keys)
                provider.online_write_batch(config, view, rows, None)
                yield pa.RecordBatch.from_pydict({"rows": [chunk.num_rows]}, schema=pa.schema([("rows", pa.int64())]))

    return frame.mapInArrow(write, schema)
