"""The ``sources:`` section: raw inputs, their columns, keys and reader options."""

from __future__ import annotations

from typing import Any

from featuremill.config.checker import Checker, join_path, kind_of
from featuremill.config.env import resolve_path
from featuremill.config.model import SOURCE_FORMATS, SOURCE_KINDS, ColumnSpec, EnvSpec, SourceSpec, spark_type
from featuremill.core.columns import is_internal, reserved_name_message

#: Reader options featuremill sets itself to keep every input row countable; a source's
#: ``options:`` may not override them (Spark option names are case-insensitive). ``mode``
#: DROPMALFORMED drops bad rows before any count sees them, ``columnNameOfCorruptRecord`` moves the
#: raw text of a bad row where the quarantine does not look, ``header``/``enforceSchema`` decide
#: whether a changed header fails the read or shifts columns silently, ``basePath`` decides which
#: folder the landing-date partition is read from.
RESERVED_READER_OPTIONS = {
    "mode": "featuremill reads PERMISSIVE and quarantines malformed rows with a reason; DROPMALFORMED would drop "
    "them uncounted and FAILFAST would fail on the first one",
    "columnnameofcorruptrecord": "the raw text of a malformed row must reach the quarantine's _corrupt_record column",
    "header": "CSV sources are read with their header checked against the declared columns",
    "enforceschema": "the header of every CSV file is checked against the declared columns "
    "(enforceSchema=false); true would map columns by position and hide a changed file",
    "basepath": "the landing-date partitions are read from the source's path",
}

#: Characters Delta refuses in column names of tables without column mapping.
_DELTA_INVALID_NAME_CHARS = " ,;{}()\n\t="


def _parse_columns(checker: Checker, value: Any, path: str) -> tuple[ColumnSpec, ...]:
    data = checker.mapping(value, path, optional=tuple(value) if isinstance(value, dict) else ())
    if not data:
        if data is not None:
            checker.error(path, "declares no columns")
        return ()
    columns = []
    for col_name, spec in data.items():
        col_path = join_path(path, str(col_name))
        bad_chars = sorted({c for c in str(col_name) if c in _DELTA_INVALID_NAME_CHARS})
        if bad_chars:
            shown = " ".join(repr(c) for c in bad_chars)
            checker.error(
                col_path,
                f"column name {str(col_name)!r} contains {shown}, which Delta tables cannot store "
                "(without column mapping); rename the column upstream",
            )
            continue
        if is_internal(str(col_name)):
            # featuremill's own columns (_ingest_date, _source_file, ...) share this prefix and
            # every reader leaves them out: a user column under it would vanish from features,
            # training sets and reports, or collide with a bookkeeping column.
            checker.error(
                col_path,
                f"column name {reserved_name_message(str(col_name))} upstream, or leave it undeclared "
                "(JSON, Parquet and Delta sources skip undeclared columns; a CSV header must match the declared "
                "columns)",
            )
            continue
        if isinstance(spec, str):
            spec = {"type": spec}
        body = checker.mapping(
            spec, col_path, required=("type",), optional=("nullable", "description", "format", "allow_non_finite")
        )
        if body is None or "type" not in body:
            continue
        try:
            sql_type = spark_type(body["type"])
        except ValueError as exc:
            checker.error(join_path(col_path, "type"), str(exc))
            continue
        nullable = checker.boolean(body["nullable"], join_path(col_path, "nullable")) if "nullable" in body else True
        fmt = checker.string(body["format"], join_path(col_path, "format")) if "format" in body else None
        if fmt is not None and sql_type not in ("timestamp", "date"):
            checker.error(join_path(col_path, "format"), "only timestamp and date columns take a format")
        allow_nf = (
            checker.boolean(body["allow_non_finite"], join_path(col_path, "allow_non_finite"))
            if "allow_non_finite" in body
            else False
        )
        columns.append(
            ColumnSpec(
                name=str(col_name),
                type=sql_type,
                nullable=bool(nullable) if nullable is not None else True,
                description=str(body.get("description") or ""),
                format=fmt,
                allow_non_finite=bool(allow_nf),
            )
        )
    return tuple(columns)


def parse_sources(checker: Checker, value: Any, env: EnvSpec) -> list[SourceSpec]:
    data = checker.mapping(value, "sources", optional=tuple(value) if isinstance(value, dict) else ())
    if not data:
        if data is not None:
            checker.error("sources", "declares no sources")
        return []
    out = []
    for src_name, body in data.items():
        path = join_path("sources", str(src_name))
        if checker.string(src_name, path, identifier=True) is None:
            continue
        spec = checker.mapping(
            body,
            path,
            required=("kind", "format", "path", "columns", "key"),
            optional=(
                "description",
                "owner",
                "options",
                "partition_column",
                "event_time",
                "max_broadcast_mb",
                "allow_empty",
                "stream",  # parsed by featuremill.config.streams
            ),
        )
        if spec is None:
            continue
        kind = (
            checker.string(spec.get("kind"), join_path(path, "kind"), choices=SOURCE_KINDS) if "kind" in spec else None
        )
        fmt = (
            checker.string(spec.get("format"), join_path(path, "format"), choices=SOURCE_FORMATS)
            if "format" in spec
            else None
        )
        rel = checker.string(spec.get("path"), join_path(path, "path")) if "path" in spec else None
        columns = _parse_columns(checker, spec.get("columns"), join_path(path, "columns")) if "columns" in spec else ()
        names = {c.name for c in columns}
        key = checker.names(spec.get("key"), join_path(path, "key")) if "key" in spec else None
        for k in key or ():
            if names and k not in names:
                checker.error(join_path(path, "key"), f"column {k!r} is not declared in columns")
        event_time = partition_column = None
        if "event_time" in spec:
            event_time = checker.string(spec["event_time"], join_path(path, "event_time"))
            if event_time and names and event_time not in names:
                checker.error(join_path(path, "event_time"), f"column {event_time!r} is not declared in columns")
            elif event_time and names and next(c for c in columns if c.name == event_time).type != "timestamp":
                checker.error(join_path(path, "event_time"), f"column {event_time!r} must be declared as timestamp")
        if "partition_column" in spec:
            partition_column = checker.string(
                spec["partition_column"], join_path(path, "partition_column"), identifier=True
            )
            if partition_column and partition_column in names:
                checker.error(
                    join_path(path, "partition_column"),
                    f"{partition_column!r} is a directory partition (name=value folders), not a file column",
                )
        if kind == "dimension":
            for reserved in ("valid_from", "valid_to"):
                if reserved in names:
                    checker.error(
                        join_path(path, "columns"),
                        f"{reserved!r} is reserved in a dimension: ingest writes each version's validity there",
                    )
        if kind == "events":
            if "event_time" not in spec:
                checker.error(join_path(path, "event_time"), "is required for an events source")
            if "partition_column" not in spec and fmt != "delta":
                checker.error(join_path(path, "partition_column"), "is required for an events source read from files")
        options: list[tuple[str, str]] = []
        if "options" in spec:
            opts = checker.mapping(
                spec["options"],
                join_path(path, "options"),
                optional=tuple(spec["options"]) if isinstance(spec["options"], dict) else (),
            )
            for k, v in (opts or {}).items():
                reason = RESERVED_READER_OPTIONS.get(str(k).lower())
                if reason is not None:
                    checker.error(
                        join_path(join_path(path, "options"), str(k)),
                        f"reader option {k!r} cannot be set per source: {reason}; remove it",
                    )
                elif isinstance(v, (dict, list)) or v is None:
                    checker.error(join_path(join_path(path, "options"), str(k)), f"expected a scalar, got {kind_of(v)}")
                else:
                    options.append((str(k), str(v).lower() if isinstance(v, bool) else str(v)))
        max_bytes = env.max_broadcast_bytes
        if "max_broadcast_mb" in spec:
            mb = checker.positive_number(spec["max_broadcast_mb"], join_path(path, "max_broadcast_mb"))
            if mb is not None:
                max_bytes = int(mb * 1024 * 1024)
        allow_empty = False
        if "allow_empty" in spec:
            allow_empty = bool(checker.boolean(spec["allow_empty"], join_path(path, "allow_empty")))
            if kind == "dimension" and allow_empty:
                checker.error(join_path(path, "allow_empty"), "applies to events sources only")
        if None in (kind, fmt, rel, key) or not columns:
            continue
        out.append(
            SourceSpec(
                name=str(src_name),
                kind=kind,
                format=fmt,
                path=resolve_path(rel, env.data_root),
                columns=columns,
                key=key,
                event_time=event_time,
                partition_column=partition_column,
                options=tuple(options),
                max_broadcast_bytes=max_bytes,
                description=str(spec.get("description") or ""),
                owner=str(spec.get("owner") or ""),
                allow_empty=allow_empty,
            )
        )
    return out
