"""``featuremill replay PIPELINE --run-id ID``: recompute a feature run from the versions it read.

Writes to ``<warehouse>/<pipeline>/replay/<run_id>/features/<set>``, never to the live feature
table, and compares the result with what the run wrote, every column and row, by the content
fingerprint; prints where they differ. Exit code 1 when a replay from the run's own versions
differs (see :mod:`featuremill.pipelines.replay` and docs/reliability.md).
"""

from __future__ import annotations

import argparse
import datetime as dt

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--run-id", required=True, help="the feature run to replay (see `featuremill runs`)")
    parser.add_argument("--feature-set", action="append", help="replay only this feature set (repeatable)")
    parser.add_argument(
        "--as-of-version",
        action="append",
        type=_version_pair,
        default=[],
        metavar="SOURCE=N",
        help="read SOURCE at Delta version N instead of the recorded one (repeatable)",
    )
    parser.add_argument(
        "--as-of-timestamp",
        action="append",
        type=_timestamp_pair,
        default=[],
        metavar="SOURCE=T",
        help="read SOURCE as committed at time T (ISO 8601, UTC unless an offset is given; "
        "resolved from the commit log) (repeatable)",
    )
    parser.add_argument(
        "--output",
        help="parent folder of the replay outputs, inside the warehouse (default <warehouse>/<pipeline>/replay)",
    )


def _split(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE=VALUE")
    return name.strip(), value.strip()


def _version_pair(text: str) -> tuple[str, int]:
    name, value = _split(text)
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a Delta version (a whole number)")
    return name, int(value)


def _timestamp_pair(text: str) -> tuple[str, dt.datetime]:
    name, value = _split(text)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 timestamp (2026-09-03T10:00:00)") from None
    return name, when


def run(args) -> int:
    from featuremill.pipelines.replay import replay_run

    config = load_config(args)
    spark = spark_for(config, f"featuremill-replay-{config.name}")
    results = replay_run(
        spark,
        config,
        run_id=args.run_id,
        feature_sets=args.feature_set,
        as_of_versions=dict(args.as_of_version),
        as_of_timestamps=dict(args.as_of_timestamp),
        output_root=args.output,
    )
    for r in results:
        versions = ", ".join(
            f"{k}@{v}" + ("" if r.version_sources.get(k) == "run" else f" ({r.version_sources[k]})")
            for k, v in sorted(r.versions.items())
        )
        emit(
            f"replay {r.feature_set} of run {r.replayed_run_id}: {r.rows} feature rows for {r.compute_start}..{r.end} "
            f"from {versions}"
        )
        emit(f"  written to {r.output_path}")
        if r.comparison is None:
            emit("  not compared: the run recorded no output version")
        else:
            emit(f"  {r.comparison.describe()}")
    # A replay from the run's own versions must reproduce it; with --as-of-* overrides a
    # difference is the answer asked for.
    return 1 if any(r.faithful and r.comparison is not None and not r.comparison.identical for r in results) else 0
