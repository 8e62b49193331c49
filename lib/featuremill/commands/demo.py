"""``featuremill demo``: generate the demo data, run the demo pipeline, print what it produced.

Steps: generate the dataset into the environment's data root (skipped when the same data is
there), ingest and build features for every day but the last as one range, then ingest and
build the last day incrementally, the way a daily schedule would, then profile the last day and
compare it with earlier days for drift (HTML + JSON reports in ``reports/demo/``). Re-running it
re-runs the same dates: each run finds its commit already in the tables (same inputs) and writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from featuremill.commands import emit, wrapped
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for
from featuremill.pipelines.demo_data import DemoDataSpec, write_demo_data

DEFAULT_PIPELINE = "conf/pipelines/demo.yaml"


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="base events to generate (default 200000)")
    # 56 days: the drift reference (from day 8) holds complete windows of every feature, the
    # longest being the 37-day amount_sum_7d_zscore (a 30-day z-score of a 7-day sum)
    parser.add_argument(
        "--days",
        type=int,
        default=56,
        help="days of events (default 56: enough for the 30-day windows to fill before the drift comparison)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--reports",
        default="reports/demo",
        help="folder for the quality and feature-selection reports (default reports/demo)",
    )
    parser.add_argument(
        "--serve",
        metavar="DIR",
        help="finally write a Feast repository in DIR, materialize into its SQLite online store and print one "
        "online vector beside the same entity's training row (scripts/demo.sh: feast/demo)",
    )
    add_pipeline_arguments(parser, default=DEFAULT_PIPELINE)


def run(args) -> int:
    from featuremill.pipelines.build_features import run_features
    from featuremill.pipelines.ingest import run_ingest

    began = time.monotonic()
    steps: dict[str, float] = {}  # seconds per step, in the order they ran
    config = load_config(args)
    if args.serve:
        # the online writer runs Python on the executors: in local mode they must be this
        # interpreter (with Feast installed), and Spark reads the setting when the session starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with _step(steps, "start Spark"):
        spark = spark_for(config, "featuremill-demo")
    spec = DemoDataSpec(events=args.events, days=args.days, seed=args.seed)
    with _step(steps, "generate data"):
        manifest = write_demo_data(spark, config.env.data_root, spec)
    _injected_problems()
    first, last = spec.start_date, spec.end_date
    history_end = last - dt.timedelta(days=1)

    with _step(steps, "ingest, history"):
        ingests = run_ingest(spark, config, start=first, end=history_end)
    with _step(steps, "features, history"):
        features = run_features(spark, config, start=first, end=history_end)
    model = None
    if config.section("preprocessing") is not None:
        # fit + select on the history, so the last day's feature run also serves preprocessed rows
        from featuremill.pipelines.demo_model import run_demo_model

        with _step(steps, "model (fit + select)"):
            model = run_demo_model(spark, config, end=history_end, report_dir=args.reports)
    with _step(steps, "ingest, last day"):
        ingests += run_ingest(spark, config, start=last, end=last)
    with _step(steps, "features, last day"):
        features += run_features(spark, config, start=last, end=last)
    from featuremill.quality.demo import demo_reports

    with _step(steps, "quality reports"):
        quality = demo_reports(spark, config, start=first, end=last, out_dir=args.reports)
    elapsed = time.monotonic() - began
    _summary(spark, config, manifest, ingests, features, elapsed)
    emit("")
    emit("time per step:")
    for name, seconds in steps.items():
        emit(f"  {name:<22} {seconds:>7.1f} s")
    emit("")
    emit(f"quality reports (profiles and drift, self-contained HTML + JSON in {args.reports}/):")
    for line in quality:
        emit(line)
    if model is not None:
        _model_summary(spark, config, model)
    if args.serve:
        _serve(spark, config, args.serve)
    return 0


@contextlib.contextmanager
def _step(steps: dict[str, float], name: str) -> Iterator[None]:
    """One demo step as a progress stage (its start and end logged); its seconds go to ``steps``."""
    from featuremill.core.progress import stage

    with stage(f"demo: {name}") as record:
        yield
    steps[name] = record.elapsed


def _injected_problems() -> None:
    """Say up front which problems the demo data has on purpose, so the warnings and quarantine
    counts they cause read as expected findings, not as a broken run."""
    from featuremill.pipelines.demo_data import DIRTY_RATES

    rates = ", ".join(
        f"{name.replace('non_finite', 'non-finite').replace('_', ' ')} {rate:.2%}" for name, rate in DIRTY_RATES.items()
    )
    emit(wrapped("demo data: dirty on purpose: ", f"events with {rates} of the base events;", indent=2))
    emit(
        wrapped(
            "  ",
            "expect the quality warning of rule 'referential_customer_id': about 1% of customer ids are "
            "missing from the customers dimension; a few bad dimension rows are quarantined.",
            indent=2,
        )
    )


def _serve(spark, config, repo: str) -> None:
    """Feast repository + materialization into SQLite, then one entity online and in training."""
    import datetime as _dt

    from pyspark.sql import functions as F

    from featuremill.serving import feast_cli
    from featuremill.serving.materialize import materialize
    from featuremill.serving.repo import render_repository, repository_views, write_repository
    from featuremill.storage import io
    from featuremill.transforms.pit import FeatureSource, point_in_time_join

    views = repository_views(spark, config)
    write_repository(render_repository(config, views), repo)
    feast_cli.apply_in_process(spark, repo, pipeline=config.name)
    results = materialize(spark, config, repo)
    emit("")
    emit(
        f"online serving (Feast repository {_relative(str(Path(repo).resolve()))}, {config.env.online_store.describe}):"
    )
    for r in results:
        emit(f"  materialize {r.view}: {r.mode}, Delta version {r.table_version}, {r.entities} entities written")
    view = views[0]
    fs = config.feature_set(view.feature_set)
    table = io.read_delta(spark, view.table)
    key_row = table.orderBy(F.col(view.event_time).desc(), *view.key_names).select(*view.key_names).limit(1).collect()
    if not key_row:
        return
    key = {k: key_row[0][k] for k in view.key_names}
    features = list(view.feature_names)[:6]
    from feast import FeatureStore

    online = (
        FeatureStore(repo_path=str(repo))
        .get_online_features(features=[f"{view.name}:{f}" for f in features], entity_rows=[key])
        .to_dict()
    )
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    spine = spark.createDataFrame([(*key.values(), now)], [*view.key_names, "label_time"])
    source = FeatureSource(
        name=fs.name, frame=table, keys=tuple(fs.entity), event_time=view.event_time, columns=tuple(features)
    )
    trained = point_in_time_join(spine, [source], spine_time="label_time").collect()[0]  # one spine row
    emit(f"  {view.name} for {key}: the online vector and the training row (PIT join at {now:%Y-%m-%d %H:%M:%S}):")
    _table(
        ["", *features],
        [["online", *[_fmt(online[f][0]) for f in features]], ["training", *[_fmt(trained[f]) for f in features]]],
    )


def _model_summary(spark, config, model) -> None:
    from featuremill.pipelines.preprocess import preprocessed_path
    from featuremill.storage import io

    state, sel = model.fit.state, model.selection.result
    emit("")
    emit(
        f"model step (training table {_relative(model.training_path)}: {model.training_rows:,} rows, "
        f"label {sel.label} positive in {model.positive_rate:.1%}):"
    )
    emit(
        f"  fit: preprocessing {state.name!r} version {state.version}, {len(state.columns)} columns, "
        f"stored in {_relative(config.tables.table('preprocessing_states'))}"
    )
    emit(f"  select: kept {len(sel.selected)} of {len(sel.features)} features: {', '.join(sel.selected)}")
    for f in sorted(sel.features, key=lambda f: f.rank or 0):
        if f.decision == "drop":
            emit(wrapped(f"    dropped {f.name}: ", f.reason, indent=6))
    for fs in config.section("preprocessing").serving.feature_sets:
        version = io.delta_version(spark, preprocessed_path(config, fs))
        emit(f"  serving: preprocessed.{fs} version {version} ({_relative(preprocessed_path(config, fs))})")
    emit(
        f"  report: {_relative(str(model.selection.report_dir / 'selection.html'))} "
        f"(+ selection.json, selected_features.json, preprocessing_state.json)"
    )


def _summary(spark, config, manifest, ingests, features, elapsed: float) -> None:
    from featuremill.storage import io

    tables = config.tables
    emit("")
    emit(
        f"featuremill demo: pipeline {config.name!r}, {manifest['rows']:,} raw transaction rows "
        f"({manifest['start']}..{manifest['end']}), finished in {elapsed:.0f}s"
    )
    emit(f"warehouse: {tables.root}")
    emit("")
    emit("runs (rows read = valid + quarantined):")
    emit(
        f"  {'job':<9} {'target':<18} {'dates':<23} {'read':>9} {'valid/out':>10} "
        f"{'quarantined':>11} {'duplicates':>10}"
    )
    for r in ingests:
        dates = "(snapshot)" if config.source(r.source).kind == "dimension" else _dates_of(r)
        emit(
            f"  {'ingest':<9} {r.source:<18} {dates:<23} {r.rows_read:>9,} {r.rows_valid:>10,} "
            f"{r.rows_quarantined:>11,} {r.rows_duplicate:>10,}"
        )
    for r in features:
        emit(
            f"  {'features':<9} {r.feature_set:<18} {str(r.compute_start) + '..' + str(r.end):<23} "
            f"{r.events_read:>9,} {r.rows_out:>10,} {'-':>11} {'-':>10}"
        )
    emit("")
    emit("Delta tables:")
    paths = [(f"validated.{s.name}", tables.validated(s.name)) for s in config.sources]
    paths += [("quarantine", tables.quarantine)]
    paths += [(f"features.{fs.name}", tables.features(fs.name)) for fs in config.feature_sets]
    paths += [("run_log", tables.run_log)]
    for name, path in paths:
        version = io.delta_version(spark, path)
        rows = io.load_delta(spark, path).count() if version is not None else 0
        emit(f"  {name:<28} version {version!s:>3}  rows {rows:>9,}  {_relative(path)}")
    fs = config.feature_sets[0]
    emit("")
    emit(f"a few rows of features.{fs.name} (latest date):")
    df = io.load_delta(spark, tables.features(fs.name))
    source = config.source(fs.source)
    shown = list(fs.entity) + [source.event_time] + [f.name for f in fs.features][:6]
    last_date = max(r.end for r in features)
    rows = (
        df.where(df["event_date"] == last_date).orderBy(*fs.entity, source.event_time).select(*shown).limit(5).collect()
    )
    _table(shown, [[_fmt(v) for v in row] for row in rows])
    emit("")
    emit(f"durations, rows, freshness and CPU of every run: featuremill runs {config.file}")


def _dates_of(r) -> str:
    return f"{r.start}..{r.end}"


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "null" if value is None else str(value)


def _table(header, rows) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    emit("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        emit("  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
