"""The ``feature_sets:`` section: entities, joins and window features."""

from __future__ import annotations

from typing import Any

from featuremill.config.checker import Checker, join_path, kind_of
from featuremill.config.model import (
    FEATURE_FUNCTIONS,
    JOIN_AS_OF,
    JOIN_BROADCAST,
    NUMERIC_TYPES,
    WINDOW_AGGREGATIONS,
    ColumnSpec,
    FeatureSetSpec,
    FeatureSpec,
    JoinSpec,
    SourceSpec,
    WhereSpec,
)
from featuremill.core.columns import is_internal, reserved_name_message

#: Functions that read a column (``count`` may, to count its non-null values).
_NEEDS_COLUMN = ("sum", "mean", "stddev", "min", "max", "lag", "first", "last", "count_distinct", "percentile")


def _percentile(checker: Checker, value: Any, path: str) -> float | None:
    """A percentile as a fraction strictly between 0 and 1 (0.5 is the median)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        checker.error(path, f"expected a number between 0 and 1 exclusive (0.9 for the 90th), got {kind_of(value)}")
        return None
    return float(value)


def parse_feature_sets(checker: Checker, value: Any, sources: dict[str, SourceSpec]) -> list[FeatureSetSpec]:
    if not isinstance(value, list) or not value:
        checker.error("feature_sets", f"expected a non-empty list of feature sets, got {kind_of(value)}")
        return []
    out = []
    seen_sets: set[str] = set()
    seen_features: dict[str, str] = {}
    for i, body in enumerate(value):
        path = f"feature_sets[{i}]"
        spec = checker.mapping(
            body,
            path,
            required=("name", "description", "owner", "version", "source", "entity", "features"),
            optional=("update_frequency", "joins"),
        )
        if spec is None:
            continue
        name = checker.string(spec.get("name"), join_path(path, "name"), identifier=True) if "name" in spec else None
        if name in seen_sets:
            checker.error(join_path(path, "name"), f"feature set {name!r} is declared more than once")
        seen_sets.add(name or "")
        description = (
            checker.string(spec.get("description"), join_path(path, "description")) if "description" in spec else None
        )
        owner = checker.string(spec.get("owner"), join_path(path, "owner")) if "owner" in spec else None
        version = (
            checker.integer(spec.get("version"), join_path(path, "version"), minimum=1) if "version" in spec else None
        )
        update_frequency = "daily"
        if "update_frequency" in spec:
            update_frequency = checker.string(spec["update_frequency"], join_path(path, "update_frequency")) or "daily"
        source = None
        if "source" in spec:
            src_name = checker.string(spec["source"], join_path(path, "source"))
            if src_name is not None:
                source = sources.get(src_name)
                if source is None:
                    checker.error(join_path(path, "source"), f"source {src_name!r} is not declared under sources")
                elif source.kind != "events":
                    checker.error(
                        join_path(path, "source"),
                        f"source {src_name!r} is a {source.kind}, features need an events source",
                    )
                    source = None
        entity = checker.names(spec.get("entity"), join_path(path, "entity")) if "entity" in spec else None
        if source and entity:
            for k in entity:
                if k not in source.column_names:
                    checker.error(join_path(path, "entity"), f"column {k!r} is not declared in source {source.name!r}")
        event_columns: dict[str, ColumnSpec] = {c.name: c for c in source.columns} if source else {}
        entity_columns: set[str] = set()
        # Every name the feature frame already has, and where it comes from (for the clash error).
        taken = {c: f"a column of source {source.name!r}" for c in event_columns} if source else {}
        taken.setdefault("event_date", "the event date every feature row gets")
        joins = []
        if "joins" in spec:
            if not isinstance(spec["joins"], list):
                checker.error(join_path(path, "joins"), f"expected a list, got {kind_of(spec['joins'])}")
            else:
                for j, jbody in enumerate(spec["joins"]):
                    jpath = f"{path}.joins[{j}]"
                    join = _parse_join(checker, jbody, jpath, sources, event_columns, entity or (), taken)
                    if join is None:
                        continue
                    joins.append(join)
                    dim = sources[join.dimension]
                    for c, output in zip(join.columns, join.output_columns, strict=True):
                        taken[output] = f"joined by {jpath}"
                        if join.level == "event":
                            event_columns[output] = dim.column(c)
                        else:
                            entity_columns.add(output)
        features = _parse_features(
            checker,
            spec.get("features"),
            join_path(path, "features"),
            event_columns,
            owner or "",
            version or 1,
            seen_features,
            name or "",
        )
        reserved = set(entity or ()) | entity_columns | ({source.event_time, "event_date"} if source else set())
        for f_i, feat in enumerate(features):
            if is_internal(feat.name):
                checker.error(f"{path}.features[{f_i}].name", f"feature name {reserved_name_message(feat.name)}")
            elif feat.name in reserved:
                checker.error(f"{path}.features[{f_i}].name", f"{feat.name!r} clashes with a key or joined column")
        if None in (name, description, owner, version, source, entity) or not features:
            continue
        out.append(
            FeatureSetSpec(
                name=name,
                description=description,
                owner=owner,
                version=version,
                update_frequency=update_frequency,
                source=source.name,
                entity=entity,
                features=tuple(features),
                joins=tuple(joins),
            )
        )
    return out


def _parse_join(
    checker: Checker,
    value: Any,
    path: str,
    sources: dict[str, SourceSpec],
    event_columns: dict[str, ColumnSpec],
    entity: tuple[str, ...],
    taken: dict[str, str],
) -> JoinSpec | None:
    spec = checker.mapping(
        value, path, required=("dimension", "on", "columns"), optional=("level", "as_of", "broadcast")
    )
    if spec is None:
        return None
    dim_name = checker.string(spec.get("dimension"), join_path(path, "dimension")) if "dimension" in spec else None
    dim = sources.get(dim_name) if dim_name else None
    if dim_name and dim is None:
        checker.error(join_path(path, "dimension"), f"source {dim_name!r} is not declared under sources")
    elif dim is not None and dim.kind != "dimension":
        checker.error(join_path(path, "dimension"), f"source {dim_name!r} is not a dimension")
        dim = None
    level = checker.string(spec.get("level", "event"), join_path(path, "level"), choices=("event", "entity"))
    as_of = checker.string(spec.get("as_of", "event_time"), join_path(path, "as_of"), choices=JOIN_AS_OF)
    broadcast = checker.string(spec.get("broadcast", "always"), join_path(path, "broadcast"), choices=JOIN_BROADCAST)
    on = checker.names(spec.get("on"), join_path(path, "on")) if "on" in spec else None
    items = _join_columns(checker, spec.get("columns"), join_path(path, "columns")) if "columns" in spec else None
    ok = dim is not None and on is not None and items is not None and None not in (level, as_of, broadcast)
    if on:
        available = set(entity) if level == "entity" else set(event_columns)
        for k in on:
            if k not in available:
                where = "the entity keys" if level == "entity" else "the source columns"
                checker.error(join_path(path, "on"), f"column {k!r} is not among {where}")
                ok = False
            if dim is not None and k not in dim.column_names:
                checker.error(join_path(path, "on"), f"column {k!r} is not declared in dimension {dim.name!r}")
                ok = False
        if dim is not None and tuple(sorted(on)) != tuple(sorted(dim.key)):
            checker.error(
                join_path(path, "on"), f"must be the dimension's key {list(dim.key)} so the join cannot multiply rows"
            )
            ok = False
    if items and dim is not None:
        for c, output, cpath in items:
            if c not in dim.column_names:
                checker.error(cpath, f"column {c!r} is not declared in dimension {dim.name!r}")
                ok = False
            elif output in taken and output == c:
                checker.error(
                    cpath,
                    f"column {c!r} already exists before the join ({taken[c]}); join it under another name "
                    f"with the mapping form columns: {{{c}: {dim.name}_{c}}} (dimension column: name in the "
                    "feature frame)",
                )
                ok = False
            elif output in taken:
                checker.error(
                    cpath,
                    f"{output!r}, the name given to column {c!r}, already exists before the join "
                    f"({taken[output]}); pick another name",
                )
                ok = False
    if not ok:
        return None
    return JoinSpec(
        dimension=dim.name,
        on=on,
        columns=tuple(c for c, _, _ in items),
        level=level,
        as_of=as_of,
        broadcast=broadcast,
        renames=tuple((c, output) for c, output, _ in items if output != c),
    )


def _join_columns(checker: Checker, value: Any, path: str) -> list[tuple[str, str, str]] | None:
    """A join's ``columns``: a name, a list of names, or a mapping of dimension column -> its name
    in the feature frame (``{year: release_year, category: category}``). Returns (dimension
    column, name in the feature frame, config path) triples, in the order given."""
    if isinstance(value, dict):
        if not value:
            checker.error(path, "expected a column name, a list of names or a mapping {column: new_name}, got {}")
            return None
        out: list[tuple[str, str, str]] = []
        ok = True
        for column, new_name in value.items():
            cpath = join_path(path, str(column))
            if not isinstance(column, str) or not column.strip():
                checker.error(cpath, f"expected a dimension column name as the key, got {kind_of(column)}")
                ok = False
                continue
            output = checker.string(new_name, cpath, identifier=True)
            if output is None:
                ok = False
            elif output != column and is_internal(output):
                checker.error(cpath, f"new name {reserved_name_message(output)}")
                ok = False
            else:
                out.append((column, output, cpath))
        outputs = [output for _, output, _ in out]
        for output in sorted({o for o in outputs if outputs.count(o) > 1}):
            columns = [c for c, o, _ in out if o == output]
            checker.error(path, f"columns {columns} are all joined as {output!r}; give each its own name")
            ok = False
        return out if ok else None
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        checker.error(
            path,
            "mixes names and mappings; list the names ([category, unit_price]) or map every column to its "
            "name in the feature frame ({category: category, year: release_year})",
        )
        return None
    names = checker.names(value, path)
    return None if names is None else [(c, c, path) for c in names]


def _parse_features(
    checker: Checker,
    value: Any,
    path: str,
    columns: dict[str, ColumnSpec],
    owner: str,
    version: int,
    seen: dict[str, str],
    set_name: str,
) -> list[FeatureSpec]:
    if not isinstance(value, list) or not value:
        checker.error(path, f"expected a non-empty list of features, got {kind_of(value)}")
        return []
    out: list[FeatureSpec] = []
    names_so_far: dict[str, FeatureSpec] = {}
    declared: set[str] = set()  # valid or not, so one bad feature does not cascade into its ratios
    pending_ratios: list[tuple[int, FeatureSpec]] = []
    for i, body in enumerate(value):
        fpath = f"{path}[{i}]"
        spec = checker.mapping(
            body,
            fpath,
            required=("name", "description", "function"),
            optional=(
                "column",
                "window",
                "offset",
                "numerator",
                "denominator",
                "where",
                "owner",
                "version",
                "percentile",
            ),
        )
        if spec is None:
            continue
        name = checker.string(spec.get("name"), join_path(fpath, "name"), identifier=True) if "name" in spec else None
        if name is not None:
            declared.add(name)
            if name in seen:
                checker.error(join_path(fpath, "name"), f"duplicate feature name {name!r} (also in {seen[name]})")
            seen[name] = f"{set_name}" if set_name else fpath
        description = (
            checker.string(spec.get("description"), join_path(fpath, "description")) if "description" in spec else None
        )
        function = (
            checker.string(spec.get("function"), join_path(fpath, "function"), choices=FEATURE_FUNCTIONS)
            if "function" in spec
            else None
        )
        f_owner = checker.string(spec["owner"], join_path(fpath, "owner")) if "owner" in spec else owner
        f_version = (
            checker.integer(spec["version"], join_path(fpath, "version"), minimum=1) if "version" in spec else version
        )
        column = window = None
        window_seconds = None
        offset = 1
        where = None
        numerator = denominator = None
        dtype = "double"
        percentile = None
        ok = None not in (name, description, function, f_owner, f_version)
        needs_column = function in _NEEDS_COLUMN
        allows_column = needs_column or function == "count"
        if "column" in spec:
            if not allows_column:
                checker.error(join_path(fpath, "column"), f"function {function!r} takes no column")
                ok = False
            else:
                column = checker.string(spec["column"], join_path(fpath, "column"))
                if column is not None and column not in columns:
                    checker.error(
                        join_path(fpath, "column"),
                        f"column {column!r} is not a column of the source or its event-level joins",
                    )
                    ok = False
                elif (
                    column is not None
                    and function in ("sum", "mean", "stddev", "percentile")
                    and not columns[column].is_numeric
                ):
                    checker.error(
                        join_path(fpath, "column"),
                        f"{function} needs a numeric column, {column!r} is {columns[column].type}",
                    )
                    ok = False
        elif needs_column:
            checker.error(join_path(fpath, "column"), f"is required for function {function!r}")
            ok = False
        if function == "ratio":
            for key in ("window", "offset", "where"):
                if key in spec:
                    checker.error(join_path(fpath, key), "a ratio takes no " + key)
                    ok = False
            for key in ("numerator", "denominator"):
                if key not in spec:
                    checker.error(join_path(fpath, key), "is required for a ratio")
                    ok = False
            numerator = (
                checker.string(spec.get("numerator"), join_path(fpath, "numerator")) if "numerator" in spec else None
            )
            denominator = (
                checker.string(spec.get("denominator"), join_path(fpath, "denominator"))
                if "denominator" in spec
                else None
            )
        elif function is not None:
            if "window" not in spec:
                checker.error(
                    join_path(fpath, "window"),
                    f"is required for function {function!r} (the history it may look back over)",
                )
                ok = False
            else:
                window_seconds = checker.duration(spec["window"], join_path(fpath, "window"))
                window = str(spec["window"]).strip()
                ok = ok and window_seconds is not None
            if "offset" in spec:
                if function != "lag":
                    checker.error(join_path(fpath, "offset"), "only lag takes an offset")
                    ok = False
                else:
                    offset = checker.integer(spec["offset"], join_path(fpath, "offset"), minimum=1) or 1
            if "where" in spec:
                if function not in WINDOW_AGGREGATIONS:
                    checker.error(join_path(fpath, "where"), "only window aggregations take a where filter")
                    ok = False
                w = checker.mapping(spec["where"], join_path(fpath, "where"), required=("column", "equals"))
                if w is not None and "column" in w and "equals" in w:
                    wcol = checker.string(w["column"], join_path(join_path(fpath, "where"), "column"))
                    if wcol is not None and wcol not in columns:
                        checker.error(
                            join_path(join_path(fpath, "where"), "column"),
                            f"column {wcol!r} is not a column of the source or its event-level joins",
                        )
                        ok = False
                    elif isinstance(w["equals"], (dict, list)) or w["equals"] is None:
                        checker.error(
                            join_path(join_path(fpath, "where"), "equals"),
                            f"expected a scalar, got {kind_of(w['equals'])}",
                        )
                        ok = False
                    elif wcol is not None:
                        where = WhereSpec(column=wcol, equals=w["equals"])
                else:
                    ok = False
        if function == "percentile":
            if "percentile" not in spec:
                checker.error(join_path(fpath, "percentile"), "is required for function 'percentile' (e.g. 0.9)")
                ok = False
            else:
                percentile = _percentile(checker, spec["percentile"], join_path(fpath, "percentile"))
                ok = ok and percentile is not None
        elif "percentile" in spec:
            checker.error(join_path(fpath, "percentile"), "only function 'percentile' takes a percentile")
            ok = False
        if function in ("count", "count_distinct"):
            dtype = "bigint"
        elif function in ("min", "max", "lag", "first", "last", "percentile") and column in columns:
            dtype = columns[column].type
        if not ok:
            continue
        feature = FeatureSpec(
            name=name,
            function=function,
            description=description,
            owner=f_owner,
            version=f_version,
            column=column,
            window=window,
            window_seconds=window_seconds,
            offset=offset,
            numerator=numerator,
            denominator=denominator,
            where=where,
            dtype=dtype,
            percentile=percentile,
        )
        if function == "ratio":
            pending_ratios.append((i, feature))
        names_so_far[name] = feature
        out.append(feature)
    for i, feature in pending_ratios:
        for key in ("numerator", "denominator"):
            ref = getattr(feature, key)
            target = names_so_far.get(ref)
            if target is None and ref in declared:
                continue
            if target is None:
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is not declared in this feature set")
            elif target.function == "ratio":
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is itself a ratio; ratios take window features")
            elif target.dtype not in NUMERIC_TYPES and not target.dtype.startswith("decimal"):
                checker.error(f"{path}[{i}].{key}", f"feature {ref!r} is not numeric")
    return out
