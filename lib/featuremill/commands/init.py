"""``featuremill init DIR``: write a small runnable project (like ``feast init``).

DIR gets a pipeline (``pipelines/starter.yaml``, with its lock file), the local environment (``conf/env/local.yaml``),
two days of sample page-view events (``data/page_views/event_date=YYYY-MM-DD/``) and a README
with the commands that run it. Nothing is overwritten: an existing non-empty DIR is refused.
"""

from __future__ import annotations

from pathlib import Path

from featuremill.commands import emit
from featuremill.core.errors import FeaturemillError

PIPELINE = """\
# A starter pipeline written by `featuremill init`: page views -> per-user activity features.
# Every key is described in featuremill's docs/pipeline-config.md. Check it with:
#   featuremill validate pipelines/starter.yaml
pipeline: starter
description: Per-user activity features from page-view events.
owner: you@example.com
timezone: UTC

sources:
  page_views:
    kind: events
    description: One row per page view.
    format: csv
    path: page_views               # relative to the environment's data_root
    partition_column: event_date   # landing folders: event_date=YYYY-MM-DD
    event_time: event_ts
    key: event_id                  # de-duplication key
    columns:
      event_id: {type: string, description: Unique id of the page view}
      user_id: {type: bigint, nullable: false, description: Who viewed the page}
      event_ts: {type: timestamp, format: "yyyy-MM-dd HH:mm:ss", description: View time (UTC)}
      page: {type: string, description: Page path}
      duration_s: {type: double, description: Seconds spent on the page}

feature_sets:
  - name: user_activity
    description: How often and how long a user browses.
    owner: you@example.com
    version: 1
    source: page_views
    entity: user_id
    features:
      - {name: views_1d, function: count, window: 1d, description: Page views in the last 24 hours}
      - {name: views_7d, function: count, window: 7d, description: Page views in the last 7 days}
      - {name: seconds_1d, function: sum, column: duration_s, window: 1d, description: Seconds on site in 24 hours}
      - {name: mean_seconds_7d, function: mean, column: duration_s, window: 7d, description: Mean view length in 7 days}
"""

LOCAL_ENV = """\
# The local environment: Spark in local mode on this machine. Relative paths are relative to the
# project folder (the one that holds conf/).
name: local
description: local mode on this machine
warehouse: warehouse
data_root: data
master: local[*]
spark:
  spark.sql.shuffle.partitions: 4
"""

#: (landing date, rows): user, minute of the day, page, seconds on the page.
SAMPLE_DAYS = {
    "2026-01-01": [(1, 540, "/home", 12.5), (1, 545, "/pricing", 40.0), (2, 600, "/home", 3.0),
                   (3, 720, "/docs", 95.0), (2, 1300, "/docs", 20.0)],
    "2026-01-02": [(1, 30, "/home", 8.0), (3, 480, "/docs", 61.5), (3, 481, "/pricing", 14.0),
                   (4, 900, "/home", 2.5), (1, 1000, "/signup", 33.0)],
}  # fmt: skip

README = """\
A featuremill project made by `featuremill init`: pipelines/starter.yaml, conf/env/local.yaml, data/.
Run: `featuremill run pipelines/starter.yaml --job ingest --start 2026-01-01 --end 2026-01-02`, then `--job features`.
Tables land in warehouse/; `featuremill validate pipelines/starter.yaml` checks your edits.
"""


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="folder to create (must not exist or be empty)")


def sample_csv(day: str) -> str:
    """The sample events landed on ``day`` as CSV text with a header."""
    lines = ["event_id,user_id,event_ts,page,duration_s"]
    for i, (user, minute, page, seconds) in enumerate(SAMPLE_DAYS[day]):
        lines.append(f"{day}-{i:03d},{user},{day} {minute // 60:02d}:{minute % 60:02d}:00,{page},{seconds}")
    return "\n".join(lines) + "\n"


def write_project(directory: str | Path) -> list[Path]:
    """Write the starter project into ``directory``; return the files written."""
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FeaturemillError(f"{root} exists and is not an empty folder: choose a new one")
    files = {
        root / "pipelines" / "starter.yaml": PIPELINE,
        root / "conf" / "env" / "local.yaml": LOCAL_ENV,
        root / "README.md": README,
    }
    for day in SAMPLE_DAYS:
        files[root / "data" / "page_views" / f"event_date={day}" / "part-0.csv"] = sample_csv(day)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [*files, _write_lock(root / "pipelines" / "starter.yaml")]


def _write_lock(pipeline: Path) -> Path:
    """Pin the starter's feature-set versions, as ``featuremill validate --update-lock`` would."""
    from featuremill.config import load_pipeline
    from featuremill.storage import versions

    lock_file = versions.lock_path(pipeline)
    config = load_pipeline(pipeline, env=str(pipeline.parent.parent / "conf" / "env" / "local.yaml"))
    versions.write_lock(versions.updated_lock(config, None, lock_file=lock_file))
    return Path(lock_file)


def run(args) -> int:
    write_project(args.directory)
    first, last = min(SAMPLE_DAYS), max(SAMPLE_DAYS)
    emit(f"wrote a featuremill project in {args.directory}: pipelines/starter.yaml, conf/env/local.yaml, data/")
    emit(f"  cd {args.directory}")
    emit("  featuremill validate pipelines/starter.yaml")
    for job in ("ingest", "features"):
        emit(f"  featuremill run pipelines/starter.yaml --job {job} --start {first} --end {last}")
    return 0
