"""The feature catalog: one entry per feature with its meaning, calculation, versions and lineage.

:func:`build_catalog` turns a :class:`~featuremill.config.PipelineConfig` (plus, optionally, what
the run log and the model registry say) into plain dicts; :func:`render_markdown` and
:func:`render_html` format them. ``featuremill docs PIPELINE --out DIR`` writes
``<pipeline>.md``, ``<pipeline>.html`` and ``<pipeline>.catalog.json``.

Each feature entry holds:

* business meaning and owner (``description``, ``owner``), feature and feature-set version,
  and fingerprints (:mod:`featuremill.storage.versions`, the same as the lock file's) that change with the definition;
* the calculation: function, window and its boundaries, source columns (with the table each
  comes from, including dimension joins), ``where`` filter, lag offset, ratio inputs, type;
* update frequency: the DAG schedule (``dag.schedule``) and the declared ``update_frequency``;
* the quality rules that name the feature, its table or its input columns (``quality:`` section);
* lineage: raw sources -> validated tables -> feature table -> training sets and models that used
  the feature set (from the run log and, when present, the model registry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from featuremill import __version__
from featuremill.config import FeatureSetSpec, FeatureSpec, PipelineConfig
from featuremill.storage.versions import feature_fingerprint, feature_set_fingerprint

log = logging.getLogger(__name__)

_AGG_WORDS = {
    "count": "count of non-null",
    "sum": "sum",
    "mean": "mean",
    "stddev": "sample standard deviation",
    "min": "minimum",
    "max": "maximum",
}
#: run-log ``job`` values written by jobs that consume feature tables (training sets).
CONSUMER_JOBS = ("training_set", "training_set_rebuild")


def _column_origin(config: PipelineConfig, feature_set: FeatureSetSpec, column: str) -> str:
    """``source.column`` for a column of the event source or of an event-level dimension join."""
    source = config.source(feature_set.source)
    if column in source.column_names:
        return f"{source.name}.{column}"
    for join in feature_set.joins:
        joined = join.dimension_column(column)
        if joined is not None:
            named = f" as {column}" if joined != column else ""
            return f"{join.dimension}.{joined}{named} (joined on {', '.join(join.on)})"
    return column


def _calculation(config: PipelineConfig, fs: FeatureSetSpec, feature: FeatureSpec) -> dict:
    source = config.source(fs.source)
    entity = ", ".join(fs.entity)
    columns: list[str] = []
    if feature.column:
        columns.append(_column_origin(config, fs, feature.column))
    if feature.where:
        columns.append(_column_origin(config, fs, feature.where.column))
    where = f"{feature.where.column} = {feature.where.equals!r}" if feature.where else None
    window = feature.window
    if feature.function == "ratio":
        text = f"{feature.numerator} / {feature.denominator} of the same row; null when the denominator is 0 or null"
    elif feature.function == "lag":
        text = (
            f"value of {feature.column} {feature.offset} event(s) before the latest event, per {entity}, "
            f"within {window}; null if that event is older or missing"
        )
    elif feature.function == "time_since_previous":
        text = (
            f"seconds from the {entity}'s previous event moment to this one, within {window}; "
            "null for the first event in the window"
        )
    else:
        what = f"{_AGG_WORDS[feature.function]} of {feature.column}" if feature.column else "number"
        text = f"{what} of the {entity}'s events with {source.event_time} in (t - {window}, t]" + (
            f", only events where {where}" if where else ""
        )
    return {
        "function": feature.function,
        "window": window,
        "window_seconds": feature.window_seconds,
        "window_boundaries": "(t - window, t]: left edge excluded, every event at t included" if window else None,
        "column": feature.column,
        "where": where,
        "offset": feature.offset if feature.function == "lag" else None,
        "numerator": feature.numerator,
        "denominator": feature.denominator,
        "source_columns": columns,
        "entity": list(fs.entity),
        "event_time": source.event_time,
        "dtype": feature.dtype,
        "text": text,
    }


def _rule_dicts(section: Any) -> list[dict]:
    """The ``quality:`` section's rules (:class:`featuremill.quality.spec.QualitySpec`) as plain
    dicts with their table, keeping only the settings a rule actually uses."""
    if section is None:
        return []
    out = []
    for table in section.tables:
        for rule in table.rules:
            settings = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(rule).items()
                if v not in (None, "", (), [])
            }
            out.append({"table": table.table, **settings})
    return out


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():  # keys too: the registry's feature_sets map is keyed by set name
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _strings(v)


def _guarding_rules(
    rules: list[dict], fs: FeatureSetSpec, feature: FeatureSpec, inputs: list[tuple[str, str]]
) -> list[dict]:
    """Rules that guard a feature: rules naming the feature itself, rules on one of its input
    columns (in the table that column comes from, when the rule names a table), and table-level
    rules (no column) on its feature table."""
    out = []
    for rule in rules:
        strings = set(_strings(rule))
        columns = set(_strings(rule.get("column") or rule.get("columns") or rule.get("feature") or ()))
        table = str(rule.get("table") or rule.get("dataset") or "")
        names_it = feature.name in strings
        on_its_inputs = bool(columns) and any(c in columns and (not table or t in table) for t, c in inputs)
        on_its_table = not columns and bool(table) and (table == fs.name or table.endswith(f"features.{fs.name}"))
        if names_it or on_its_inputs or on_its_table:
            out.append(rule)
    return out


def build_catalog(config: PipelineConfig, *, runs: list[dict] | None = None, models: list[dict] | None = None) -> dict:
    """The catalog as plain data. ``runs``: run-log rows (dicts); ``models``: registry rows."""
    from featuremill.core.schedule import describe

    dag = config.section("dag")
    rules = _rule_dicts(config.section("quality"))
    runs = runs or []
    tables = config.tables
    schedule = None
    if dag is not None and dag.schedule:
        schedule = f"{describe(dag.schedule, dag.timezone)} (schedule '{dag.schedule}')"
    feature_sets = []
    for fs in config.feature_sets:
        source = config.source(fs.source)
        dims = [j.dimension for j in fs.joins]
        last_feature_run = _latest(
            r
            for r in runs
            if r.get("job") == "features" and r.get("target") == fs.name and r.get("status") == "succeeded"
        )
        consumers = _consumers(fs, runs, models or [])
        set_fp = feature_set_fingerprint(config, fs)
        lineage = {
            "raw_sources": [
                {"source": s.name, "path": s.path, "format": s.format}
                for s in [source] + [config.source(d) for d in dims]
            ],
            "validated_tables": [tables.validated(s) for s in [source.name] + dims],
            "feature_table": tables.features(fs.name),
            "last_run": _run_summary(last_feature_run),
            "consumers": consumers,
        }
        features = []
        for feature in fs.features:
            calc = _calculation(config, fs, feature)
            features.append(
                {
                    "name": feature.name,
                    "feature_set": fs.name,
                    "description": feature.description,
                    "owner": feature.owner or fs.owner,
                    "version": feature.version,
                    "feature_set_version": fs.version,
                    "fingerprint": feature_fingerprint(config, fs, feature.name),
                    "feature_set_fingerprint": set_fp,
                    "calculation": calc,
                    "update_frequency": {"schedule": schedule, "declared": fs.update_frequency},
                    "quality_rules": _guarding_rules(rules, fs, feature, _inputs(fs, feature, config)),
                    "lineage": lineage,
                }
            )
        feature_sets.append(
            {
                "name": fs.name,
                "description": fs.description,
                "owner": fs.owner,
                "version": fs.version,
                "fingerprint": set_fp,
                "entity": list(fs.entity),
                "source": fs.source,
                "table": tables.features(fs.name),
                "features": features,
                "lineage": lineage,
            }
        )
    return {
        "pipeline": config.name,
        "description": config.description,
        "owner": config.owner,
        "file": config.file,
        "generated_by": f"featuremill {__version__}",
        "feature_sets": feature_sets,
    }


def _inputs(fs: FeatureSetSpec, feature: FeatureSpec, config: PipelineConfig) -> list[tuple[str, str]]:
    """(table, column) pairs a feature reads: its column and filter column, with their origin."""
    out = []
    for column in (feature.column, feature.where.column if feature.where else None):
        if not column:
            continue
        table, read = fs.source, column
        for join in fs.joins:
            joined = join.dimension_column(column)
            if joined is not None:  # the dimension's own name for it: a renamed column is read as such
                table, read = join.dimension, joined
        out.append((table, read))
    if feature.function == "ratio":
        out += [(f"features.{fs.name}", n) for n in (feature.numerator, feature.denominator) if n]
    return out


def _latest(rows: Iterable[dict]) -> dict | None:
    rows = list(rows)
    return max(rows, key=lambda r: str(r.get("started_at") or "")) if rows else None


def _run_summary(row: dict | None) -> dict | None:
    if not row:
        return None
    return {
        "run_id": row.get("run_id"),
        "finished_at": str(row.get("finished_at")),
        "dates": f"{row.get('start_date')}..{row.get('end_date')}",
        "input_versions": dict(row.get("input_versions") or {}),
        "output_versions": dict(row.get("output_versions") or {}),
    }


def _consumers(fs: FeatureSetSpec, runs: list[dict], models: list[dict]) -> list[dict]:
    """Training sets (run-log rows of training jobs) and models (registry rows) naming ``fs``."""
    out = []
    for r in runs:
        if r.get("job") in CONSUMER_JOBS and _mentions(_jsonish(r), fs.name):
            out.append(
                {
                    "kind": "training set",
                    "name": r.get("target"),
                    "run_id": r.get("run_id"),
                    "at": str(r.get("finished_at")),
                }
            )
    for m in models:
        if _mentions(_jsonish(m), fs.name):
            name = m.get("model") or m.get("name") or m.get("model_name")
            out.append({"kind": "model", "name": name, "version": m.get("version") or m.get("model_version")})
    return out


def _mentions(value: Any, name: str) -> bool:
    """Whether any string in ``value`` names ``name`` as a whole word (``cust``, ``cust.x@2``, ``features/cust``)."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    return any(pattern.search(s) for s in _strings(value))


def _jsonish(row: dict) -> Any:
    """A row with JSON string columns (``details``) expanded, so nested names can be matched."""
    out = {}
    for k, v in row.items():
        if isinstance(v, str) and v[:1] in "{[":
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v if isinstance(v, (str, dict, list, tuple)) else str(v)
    return out


def read_lineage_inputs(spark, config: PipelineConfig) -> tuple[list[dict], list[dict]]:
    """Run-log rows and model-registry rows (both small metadata tables), if the tables exist."""
    from featuremill.storage import io

    runs: list[dict] = []
    models: list[dict] = []
    run_log = config.tables.run_log
    if io.is_delta_table(spark, run_log):
        # Only the columns lineage needs; the run log has one row per run, not per data row.
        cols = [
            "run_id",
            "job",
            "target",
            "status",
            "started_at",
            "finished_at",
            "start_date",
            "end_date",
            "input_versions",
            "output_versions",
            "details",
        ]
        from pyspark.sql import functions as F

        wanted = io.read_delta(spark, run_log).where(F.col("job").isin("features", *CONSUMER_JOBS))
        runs = [r.asDict() for r in wanted.select(*cols).collect()]
    if io.is_delta_table(spark, config.tables.model_registry):
        models = [r.asDict() for r in io.read_delta(spark, config.tables.model_registry).collect()]
    return runs, models


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _feature_fields(feature: dict) -> list[tuple[str, str]]:
    calc = feature["calculation"]
    lineage = feature["lineage"]
    freq = feature["update_frequency"]
    rules = feature["quality_rules"]
    last = lineage["last_run"]
    consumers = lineage["consumers"]
    fields = [
        ("Business meaning", feature["description"]),
        ("Owner", feature["owner"]),
        ("Calculation", calc["text"]),
        ("Function", calc["function"]),
        ("Window", f"{calc['window']} ({calc['window_boundaries']})" if calc["window"] else "none (row-level)"),
        ("Source columns", ", ".join(calc["source_columns"]) or "none (counts events)"),
        ("Filter", calc["where"] or "none"),
        ("Entity / time", f"{', '.join(calc['entity'])} at {calc['event_time']}"),
        ("Type", calc["dtype"]),
        (
            "Version",
            f"feature v{feature['version']}, feature set {feature['feature_set']} v{feature['feature_set_version']}",
        ),
        ("Fingerprint", f"{feature['fingerprint']} (feature set {feature['feature_set_fingerprint']})"),
        ("Update frequency", f"{freq['schedule'] or 'no schedule declared'}; declared {freq['declared']}"),
        ("Quality rules", "; ".join(_rule_text(r) for r in rules) if rules else "none declared"),
        (
            "Lineage",
            " -> ".join(
                [
                    " + ".join(f"{s['source']} ({s['format']} {s['path']})" for s in lineage["raw_sources"]),
                    " + ".join(lineage["validated_tables"]),
                    lineage["feature_table"],
                    (
                        ", ".join(
                            f"{c['kind']} {c['name']}" + (f" v{c['version']}" if c.get("version") else "")
                            for c in consumers
                        )
                        or "no training sets or models recorded yet"
                    ),
                ]
            ),
        ),
        (
            "Last build",
            f"run {last['run_id']} for {last['dates']}, finished {last['finished_at']}, "
            f"table version {last['output_versions']}"
            if last
            else "not built yet",
        ),
    ]
    return fields


def _rule_text(rule: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in rule.items() if v not in (None, "", [], {}))


def render_markdown(catalog: dict) -> str:
    lines = [
        f"# Feature catalog: {catalog['pipeline']}",
        "",
        catalog["description"] or "",
        "",
        f"Owner: {catalog['owner'] or '-'}. Generated by {catalog['generated_by']} from `{catalog['file']}`.",
        "",
    ]
    lines.append("| feature | feature set | meaning | window | owner | version |")
    lines.append("|---|---|---|---|---|---|")
    for fs in catalog["feature_sets"]:
        for f in fs["features"]:
            lines.append(
                f"| [{f['name']}](#{f['name']}) | {fs['name']} | {_md(f['description'])} | "
                f"{f['calculation']['window'] or '-'} | {f['owner']} | {f['version']} |"
            )
    for fs in catalog["feature_sets"]:
        lines += [
            "",
            f"## Feature set `{fs['name']}` (v{fs['version']})",
            "",
            fs["description"],
            "",
            f"Entity: {', '.join(fs['entity'])}; source: {fs['source']}; table: `{fs['table']}`; "
            f"owner: {fs['owner']}; fingerprint `{fs['fingerprint']}`.",
        ]
        for f in fs["features"]:
            lines += ["", f"### {f['name']}", "", "| | |", "|---|---|"]
            lines += [f"| {k} | {_md(v)} |" for k, v in _feature_fields(f)]
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_html(catalog: dict) -> str:
    esc = html.escape
    parts = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>Feature catalog: {esc(catalog['pipeline'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;"
        "text-align:left;vertical-align:top}th{background:#f3f3f3}code{background:#f6f6f6}</style>",
        "</head><body>",
        f"<h1>Feature catalog: {esc(catalog['pipeline'])}</h1>",
        f"<p>{esc(catalog['description'] or '')}</p>",
        f"<p>Owner: {esc(catalog['owner'] or '-')}. Generated by {esc(catalog['generated_by'])} from "
        f"<code>{esc(catalog['file'])}</code>.</p>",
        "<table><tr><th>feature</th><th>feature set</th><th>meaning</th><th>window</th><th>owner</th>"
        "<th>version</th></tr>",
    ]
    for fs in catalog["feature_sets"]:
        for f in fs["features"]:
            parts.append(
                f"<tr><td><a href='#{esc(f['name'])}'>{esc(f['name'])}</a></td><td>{esc(fs['name'])}</td>"
                f"<td>{esc(f['description'])}</td><td>{esc(f['calculation']['window'] or '-')}</td>"
                f"<td>{esc(f['owner'])}</td><td>{f['version']}</td></tr>"
            )
    parts.append("</table>")
    for fs in catalog["feature_sets"]:
        parts.append(
            f"<h2>Feature set <code>{esc(fs['name'])}</code> (v{fs['version']})</h2>"
            f"<p>{esc(fs['description'])}</p><p>Entity: {esc(', '.join(fs['entity']))}; source: "
            f"{esc(fs['source'])}; table: <code>{esc(fs['table'])}</code>; fingerprint "
            f"<code>{esc(fs['fingerprint'])}</code>.</p>"
        )
        for f in fs["features"]:
            parts.append(f"<h3 id='{esc(f['name'])}'>{esc(f['name'])}</h3><table>")
            parts += [f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in _feature_fields(f)]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def catalog_json(catalog: dict) -> str:
    return json.dumps(catalog, indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
