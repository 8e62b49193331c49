"""Online-serving benchmark (issue 15): materialization throughput and online lookup latency.

Setup (untimed): a throw-away project under the work folder with one feature set, ``activity``
(``customer_id``; 7-day sum and count, 30-day mean of ``amount``), whose Delta feature table is
the output of :func:`featuremill.transforms.features.with_window_features` (the feature job's
transform) over the benchmark's typed events (:func:`featuremill.bench.data.typed_events`): about
one row per event, one entity per 40 events. One Feast repository per online store (SQLite, and
Redis when an address is given), generated and applied with featuremill's own functions.

Figures:

* **Materialization**: featuremill's :func:`featuremill.serving.materialize.materialize`
  (``full=True``) against Feast's own ``FeatureStore.materialize`` over the same repository, table
  and store, both in this process and this Spark session (Feast's Spark offline store reuses the
  active session; its ``quotedRegexColumnNames`` setting is restored after each call), rounds
  interleaved. Rows per second = entities written / seconds (feature-table rows read per second
  are in the JSON).
* **Incremental**: per round, 1% of the entities get a newer feature row (a new Delta version,
  untimed; the table has the change data feed on, as the feature job creates it), then
  featuremill's incremental run (the changed entities from the feed, mode ``incremental_cdf``) and a full
  run of the same version are timed back to back; the figure is the median of per-round ratios.
* **Latency**: ``get_online_features`` through the Python SDK (``FeatureStore`` in this process,
  ``to_dict()`` included) and through Feast's HTTP server (``feast serve`` on 127.0.0.1, one
  keep-alive connection, the JSON body parsed), for 1 entity and for a batch of 100 random
  existing entities; p50 / p99 over ``lookups`` timed requests after ``lookups // 10`` warm-up
  ones.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from featuremill.bench.common import paired_ratio
from featuremill.storage import io

log = logging.getLogger(__name__)

VIEW = "activity"
FEATURES = ("f_sum_7d", "f_count_7d", "f_mean_30d")
PIPELINE_NAME = "benchserve"

PIPELINE_YAML = """\
pipeline: benchserve
timezone: UTC
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
      customer_id: {type: bigint, nullable: false}
      event_ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}
      amount: double
feature_sets:
  - name: activity
    description: Spend per customer (serving benchmark).
    owner: bench@featuremill.local
    version: 1
    source: tx
    entity: customer_id
    features:
      - {name: f_sum_7d, function: sum, column: amount, window: 7d, description: Spend in 7 days}
      - {name: f_count_7d, function: count, window: 7d, description: Purchases in 7 days}
      - {name: f_mean_30d, function: mean, column: amount, window: 30d, description: Mean spend in 30 days}
"""


@dataclass(frozen=True)
class ServingOptions:
    """What the serving section runs: ``redis`` HOST:PORT (None: SQLite only), the HTTP port of
    ``feast serve``, timed ``lookups`` per latency figure, ``batch`` entities per batch lookup,
    ``changed_fraction`` of the entities changed per incremental round."""

    redis: str | None = None
    http_port: int = 6567
    lookups: int = 300
    batch: int = 100
    changed_fraction: float = 0.01


def percentiles(samples: list[float]) -> dict:
    """p50 / p99 / max (milliseconds) of ``samples`` (seconds), nearest-rank."""
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        k = max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))
        return ordered[k] * 1000

    return {"n": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": ordered[-1] * 1000}


# ---------------------------------------------------------------------------------- the project
def make_project(root: Path, redis: str | None) -> Path:
    """The benchmark's project (pipeline file, environments ``local`` = SQLite and ``redis``)."""
    (root / "conf" / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "env").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    base = "warehouse: warehouse\ndata_root: data\nmaster: local[2]\n"
    (root / "conf" / "env" / "local.yaml").write_text(base + "online_store: {type: sqlite}\n")
    if redis:
        (root / "conf" / "env" / "redis.yaml").write_text(base + f"online_store: {{type: redis, address: '{redis}'}}\n")
    path = root / "conf" / "pipelines" / f"{PIPELINE_NAME}.yaml"
    path.write_text(PIPELINE_YAML)
    return path


def write_feature_table(spark, config, events) -> dict:
    """The ``activity`` feature table (Delta, by ``event_date``) from typed events; its sizes."""
    from pyspark.sql import functions as F

    from featuremill.bench.data import pit_feature_specs
    from featuremill.transforms.features import with_window_features

    feats = with_window_features(
        events.select("event_id", "customer_id", "event_ts", "amount"),
        entity=["customer_id"],
        event_time="event_ts",
        order_key=["event_id"],
        features=pit_feature_specs(),
    ).select("customer_id", "event_ts", *FEATURES, F.to_date("event_ts").alias("event_date"))
    from featuremill.storage.retention import CHANGE_DATA_FEED

    path = config.tables.features(VIEW)
    io.overwrite(
        feats.repartition("event_date"),
        path,
        root=config.env.root,
        partition_by=["event_date"],
        properties={
            CHANGE_DATA_FEED: "true"
        },  # as the feature job creates feature tables: the incremental rounds read the feed
        what="benchmark feature table",
    )
    row = (
        spark.read.format("delta")
        .load(path)
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("customer_id").alias("entities"))
        .first()
    )
    return {"rows": int(row["rows"]), "entities": int(row["entities"])}


def change_entities(spark, config, *, fraction: float, round_no: int) -> int:
    """Append, for ``fraction`` of the entities (at least one; a different hash-ordered sample each
    round), one feature row newer than all of theirs with different values: a new Delta version.
    Returns the entities changed."""
    from pyspark.sql import functions as F

    path = config.tables.features(VIEW)
    table = spark.read.format("delta").load(path)
    latest = table.groupBy("customer_id").agg(F.max("event_ts").alias("ts"))
    entities = latest.count()
    k = max(1, int(round(fraction * entities)))
    chosen = latest.orderBy(F.xxhash64("customer_id", F.lit(round_no))).limit(k)
    new = chosen.select(
        "customer_id",
        (F.col("ts") + F.expr("INTERVAL 1 HOUR")).alias("event_ts"),
        F.lit(1000.0 + round_no).alias("f_sum_7d"),
        F.lit(1000 + round_no).alias("f_count_7d"),
        F.lit(10.0 + round_no).alias("f_mean_30d"),
    ).withColumn("event_date", F.to_date("event_ts"))
    changed = new.select(*[F.col(c).cast(table.schema[c].dataType) for c in table.columns])
    io.append(changed, path, root=config.env.root, what="benchmark feature table")
    return k


def make_repository(spark, config, out: Path) -> Path:
    """Generate and apply the Feast repository of ``config`` (its environment's online store)."""
    from featuremill.serving import feast_cli
    from featuremill.serving.repo import render_repository, repository_views, write_repository

    views = repository_views(spark, config)
    write_repository(render_repository(config, views), out)
    feast_cli.apply_in_process(spark, out, pipeline=config.name)
    return out


# ---------------------------------------------------------------------------------- materialization
def featuremill_materialize(spark, config, repo: Path, *, full: bool) -> dict:
    from featuremill.serving.materialize import materialize

    results = materialize(spark, config, repo, views=[VIEW], full=full)
    r = results[0]
    return {"mode": r.mode, "entities": r.entities, "table_version": r.table_version}


def feast_materialize(spark, repo: Path, start: dt.datetime, end: dt.datetime) -> dict:
    """Feast's own materialization of the view (its Spark offline store, its online write)."""
    from feast import FeatureStore

    key = "spark.sql.parser.quotedRegexColumnNames"
    before = spark.conf.get(key, "false")
    try:
        store = FeatureStore(repo_path=str(repo))
        store.materialize(start_date=start, end_date=end, feature_views=[VIEW])
    finally:
        spark.conf.set(key, before)  # Feast switches it on for the session; featuremill's SQL expects it off
    return {}


def _time_bounds(spark, config) -> tuple[dt.datetime, dt.datetime]:
    from pyspark.sql import functions as F

    row = (
        spark.read.format("delta").load(config.tables.features(VIEW)).agg(F.min("event_ts"), F.max("event_ts")).first()
    )
    return row[0] - dt.timedelta(days=1), row[1] + dt.timedelta(days=400)


# ---------------------------------------------------------------------------------- latency
def _entity_ids(spark, config, count: int, seed: int) -> list[int]:
    """``count`` entity ids of the table (a small sample; keys only)."""
    from pyspark.sql import functions as F

    ids = (
        spark.read.format("delta")
        .load(config.tables.features(VIEW))
        .select("customer_id")
        .distinct()
        .orderBy(F.xxhash64("customer_id", F.lit(seed)))
        .limit(count)
    )
    return [int(r[0]) for r in ids.collect()]  # a bounded sample of keys for the lookups


def sdk_latency(repo: Path, ids: list[int], *, lookups: int, batch: int, seed: int) -> dict:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    rng = random.Random(seed)

    def one(entities: list[int]) -> int:
        data = store.get_online_features(features=refs, entity_rows=[{"customer_id": e} for e in entities]).to_dict()
        return sum(v is not None for v in data[FEATURES[0]])

    return _measure(one, ids, rng, lookups=lookups, batch=batch)


def _measure(lookup, ids: list[int], rng: random.Random, *, lookups: int, batch: int) -> dict:
    out = {}
    for name, size in (("1 entity", 1), (f"{batch} entities", batch)):
        for _ in range(max(1, lookups // 10)):
            lookup(rng.sample(ids, size))
        samples, found, asked = [], 0, 0
        for _ in range(lookups):
            entities = rng.sample(ids, size)
            began = time.perf_counter()
            found += lookup(entities)
            samples.append(time.perf_counter() - began)
            asked += size
        out[name] = {**percentiles(samples), "found": found, "asked": asked}
    return out


class FeastServer:
    """``feast serve`` on 127.0.0.1:``port`` for ``repo``, started and stopped by this object."""

    def __init__(self, repo: Path, port: int):
        self.repo, self.port = repo, port
        self.process: subprocess.Popen | None = None
        self.log_path = repo / "feast_serve.log"

    def __enter__(self):
        from featuremill.serving.feast_cli import feast_executable

        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is already taken: choose another --serve-port")
        log_file = open(self.log_path, "w")  # closed in __exit__, with the process
        self._log_file = log_file
        self.process = subprocess.Popen(
            [feast_executable(), "serve", "-h", "127.0.0.1", "-p", str(self.port), "--no-access-log"],
            cwd=str(self.repo),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"feast serve exited with {self.process.returncode}; see {self.log_path}")
            if _port_open(self.port):
                return self
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"feast serve did not listen on 127.0.0.1:{self.port} within 180 s; see {self.log_path}")

    def __exit__(self, *exc):
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log_file.close()
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_latency(repo: Path, ids: list[int], *, port: int, lookups: int, batch: int, seed: int) -> dict:
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    rng = random.Random(seed)
    with FeastServer(repo, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def one(entities: list[int]) -> int:
            body = json.dumps({"features": refs, "entities": {"customer_id": entities}})
            conn.request("POST", "/get-online-features", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"feast serve answered {response.status}: {payload[:300]!r}")
            data = json.loads(payload)
            names = data["metadata"]["feature_names"]
            values = data["results"][names.index(FEATURES[0])]["values"]
            return sum(v is not None for v in values)

        # the first requests load the registry and open the store: wait until one succeeds
        deadline = time.monotonic() + 60
        while True:
            try:
                one(ids[:1])
                break
            except (OSError, http.client.HTTPException, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                conn.close()
                time.sleep(1)
        try:
            return _measure(one, ids, rng, lookups=lookups, batch=batch)
        finally:
            conn.close()


# ---------------------------------------------------------------------------------- the section
def run(spark, events, workdir: str, options: ServingOptions, *, runs: int, warmup: int, seed: int = 7) -> dict:
    """Run the serving section over ``events`` (typed events, see module docstring); JSON-ready dict."""
    import shutil

    from featuremill.config import load_pipeline

    root = Path(workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    pipeline = make_project(root, options.redis)
    config = load_pipeline(pipeline, env="local")
    t0 = time.perf_counter()
    sizes = write_feature_table(spark, config, events)
    prepare_s = time.perf_counter() - t0
    log.info("serving: feature table of %d rows, %d entities", sizes["rows"], sizes["entities"])
    stores = {"sqlite": config}
    if options.redis:
        stores["redis"] = load_pipeline(pipeline, env="redis")
    repos = {name: make_repository(spark, cfg, root / "feast" / name) for name, cfg in stores.items()}
    start, end = _time_bounds(spark, config)

    # materialization: featuremill (full) against Feast, interleaved, into SQLite (and Redis)
    materialization = {}
    for name, cfg in stores.items():
        repo = repos[name]
        fm_s, feast_s, fm_result = [], [], {}
        for round_no in range(warmup + runs):
            began = time.perf_counter()
            fm_result = featuremill_materialize(spark, cfg, repo, full=True)
            fm_elapsed = time.perf_counter() - began
            began = time.perf_counter()
            feast_materialize(spark, repo, start, end)
            feast_elapsed = time.perf_counter() - began
            if round_no >= warmup:
                fm_s.append(fm_elapsed)
                feast_s.append(feast_elapsed)
            log.info("serving %s round %d: featuremill %.1f s, feast %.1f s", name, round_no, fm_elapsed, feast_elapsed)
        entities = fm_result["entities"]
        materialization[name] = {
            "entities": entities,
            "featuremill_runs_s": [round(s, 3) for s in fm_s],
            "feast_runs_s": [round(s, 3) for s in feast_s],
            "featuremill_median_s": statistics.median(fm_s),
            "feast_median_s": statistics.median(feast_s),
            "featuremill_rows_per_s": entities / statistics.median(fm_s),
            "feast_rows_per_s": entities / statistics.median(feast_s),
            "featuremill_table_rows_per_s": sizes["rows"] / statistics.median(fm_s),
            "feast_over_featuremill": paired_ratio(feast_s, fm_s),
        }

    # incremental: 1% of the entities changed, incremental run against a full run of the same version
    inc_s, full_s, changed, written = [], [], [], []
    sqlite_repo = repos["sqlite"]
    featuremill_materialize(spark, config, sqlite_repo, full=True)  # records the current version
    for round_no in range(warmup + runs):
        n = change_entities(spark, config, fraction=options.changed_fraction, round_no=round_no)
        began = time.perf_counter()
        inc = featuremill_materialize(spark, config, sqlite_repo, full=False)
        inc_elapsed = time.perf_counter() - began
        began = time.perf_counter()
        featuremill_materialize(spark, config, sqlite_repo, full=True)
        full_elapsed = time.perf_counter() - began
        if inc["mode"] != "incremental_cdf" or inc["entities"] != n:
            raise RuntimeError(
                f"incremental round {round_no}: expected {n} entities written from the change feed, got {inc}"
            )
        if round_no >= warmup:
            inc_s.append(inc_elapsed)
            full_s.append(full_elapsed)
            changed.append(n)
            written.append(inc["entities"])
    incremental = {
        "changed_fraction": options.changed_fraction,
        "changed_entities": changed,
        "written_entities": written,
        "incremental_runs_s": [round(s, 3) for s in inc_s],
        "full_runs_s": [round(s, 3) for s in full_s],
        "incremental_median_s": statistics.median(inc_s),
        "full_median_s": statistics.median(full_s),
        "ratio": paired_ratio(inc_s, full_s),
    }

    # latency: SDK and HTTP, per store
    ids = _entity_ids(spark, config, max(options.batch * 10, 1000), seed)
    batch = min(options.batch, len(ids))  # tiny smoke runs have fewer entities than a batch
    latency = {}
    for name in stores:
        repo = repos[name]
        latency[name] = {
            "sdk": sdk_latency(repo, ids, lookups=options.lookups, batch=batch, seed=seed),
            "http": http_latency(repo, ids, port=options.http_port, lookups=options.lookups, batch=batch, seed=seed),
        }
    return {
        "feature_rows": sizes["rows"],
        "entities": sizes["entities"],
        "prepare_s": round(prepare_s, 1),
        "stores": list(stores),
        "redis": options.redis,
        "lookups": options.lookups,
        "batch": batch,
        "materialization": materialization,
        "incremental": incremental,
        "latency": latency,
    }
