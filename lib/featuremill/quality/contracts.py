"""Schema contracts: compare what a job is about to write with the live Delta table, before writing.

The incoming schema is the DataFrame the job will write (known from its plan, no Spark job
runs); the live schema is read from the Delta log. Per column:

* **same type**: fine;
* **new column** (in the data, not in the table): allowed when the table's policy says
  ``additive: allow`` (the default); the write then evolves the schema. Older rows read as null;
* **widening** (``int`` -> ``bigint``, ``float`` -> ``double``, a wider decimal, ``date`` ->
  ``timestamp_ntz``...): allowed only for columns listed in ``schema.widening``; the write
  enables Delta type widening on the table and widens the column;
* **dropped column**, **rename** (a column gone and a new one of the same type appearing),
  **narrowing** and any other type change: refused.

Refusals raise :class:`~featuremill.core.errors.SchemaContractError` listing every problem with the
column, the old type, the new type and the fix. Delta's own schema enforcement stays on as the
backstop; this check exists to fail earlier and say what to do. It is a pure function of two
schemas, so tests (and the fault-injection suite) can call :func:`compare_schemas` directly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from featuremill.core.errors import SchemaContractError
from featuremill.quality.spec import SchemaPolicy

log = logging.getLogger(__name__)

_INTEGRAL_ORDER = ("tinyint", "smallint", "int", "bigint")
_INTEGRAL_DIGITS = {"tinyint": 3, "smallint": 5, "int": 10, "bigint": 20}
_DECIMAL_RE = re.compile(r"^decimal\((\d+),(\d+)\)$")


@dataclass(frozen=True)
class SchemaChange:
    """What an accepted write changes: columns added and columns widened (name, old, new)."""

    table: str
    added: tuple[tuple[str, str], ...] = ()
    widened: tuple[tuple[str, str, str], ...] = ()
    live_version: int | None = None

    @property
    def evolves(self) -> bool:
        """The write must evolve the table schema (``mergeSchema`` / MERGE schema evolution)."""
        return bool(self.added or self.widened)


def widening_allowed(old: str, new: str) -> bool:
    """True when Delta type widening can turn a column of type ``old`` into ``new`` losslessly."""
    if old == new:
        return True
    if old in _INTEGRAL_ORDER and new in _INTEGRAL_ORDER:
        return _INTEGRAL_ORDER.index(new) > _INTEGRAL_ORDER.index(old)
    if old == "float" and new == "double":
        return True
    if old in ("tinyint", "smallint", "int") and new == "double":
        return True
    if old == "date" and new == "timestamp_ntz":
        return True
    new_dec = _DECIMAL_RE.match(new)
    if new_dec:
        p2, s2 = int(new_dec.group(1)), int(new_dec.group(2))
        old_dec = _DECIMAL_RE.match(old)
        if old_dec:
            p, s = int(old_dec.group(1)), int(old_dec.group(2))
            return s2 >= s and p2 - s2 >= p - s
        if old in _INTEGRAL_DIGITS:
            return p2 - s2 >= _INTEGRAL_DIGITS[old]
    return False


def _is_narrowing(old: str, new: str) -> bool:
    return widening_allowed(new, old) and old != new


def compare_schemas(
    live, incoming, policy: SchemaPolicy, *, table: str, live_version: int | None = None, policy_path: str | None = None
) -> SchemaChange:
    """Check ``incoming`` (a ``StructType``) against ``live`` (``StructType`` or None for a new table).

    Returns the accepted :class:`SchemaChange`; raises :class:`SchemaContractError` with every
    refused change. ``policy_path`` is where the policy lives in the config, for the messages.
    """
    where = policy_path or f"quality.tables.{table}.schema"
    problems: list[str] = []
    problems += _declared_problems(incoming, policy, table, where)
    if live is None:
        if problems:
            raise SchemaContractError(table, problems, version=live_version)
        return SchemaChange(table=table)
    live_types = {f.name.lower(): (f.name, f.dataType.simpleString()) for f in live.fields}
    new_types = {f.name.lower(): (f.name, f.dataType.simpleString()) for f in incoming.fields}
    dropped = [live_types[k] for k in live_types if k not in new_types]
    added = [new_types[k] for k in new_types if k not in live_types]
    widened: list[tuple[str, str, str]] = []
    for key, (name, old) in live_types.items():
        if key not in new_types:
            continue
        new = new_types[key][1]
        if old == new:
            continue
        if widening_allowed(old, new):
            if policy.may_widen(name):
                widened.append((name, old, new))
            else:
                problems.append(
                    f"column '{name}' would widen from {old} to {new}, but widening is not declared for it. "
                    f"Fix: add '{name}' to {where}.widening to allow it, or declare '{name}' as {old} again"
                )
        elif _is_narrowing(old, new):
            problems.append(
                f"column '{name}' would narrow from {old} to {new}: narrowing is refused (values already in the "
                f"table may not fit {new}). Fix: declare '{name}' as {old} again, or write the new type to a new "
                f"table"
            )
        else:
            problems.append(
                f"column '{name}' would change type from {old} to {new}: only widening is allowed. Fix: declare "
                f"'{name}' as {old} again, or add the {new} values as a new column and retire the old one "
                f"deliberately"
            )
    # A column gone and a new one of the same type: most likely a rename. Name both.
    renamed_new: set[str] = set()
    for old_name, old_type in dropped:
        twin = next((n for n, t in added if t == old_type and n not in renamed_new), None)
        if twin is not None:
            renamed_new.add(twin)
            problems.append(
                f"column '{old_name}' ({old_type}) is missing and '{twin}' ({old_type}) is new: renaming columns "
                f"is refused (readers of '{old_name}' would silently get nulls). Fix: keep the name '{old_name}', "
                f"or add '{twin}' while keeping '{old_name}' and retire it deliberately"
            )
        else:
            problems.append(
                f"column '{old_name}' ({old_type}) is in the table but missing from the incoming data: dropping "
                f"columns is refused. Fix: declare '{old_name}' again (it may be null), or drop it deliberately "
                f"from the table (ALTER TABLE ... DROP COLUMN, needs column mapping) before re-running"
            )
    really_added = [(n, t) for n, t in added if n not in renamed_new]
    if really_added and policy.additive != "allow":
        for name, typ in really_added:
            problems.append(
                f"column '{name}' ({typ}) is new, but {where}.additive is 'refuse'. Fix: set additive: allow, or "
                f"remove '{name}'"
            )
    if problems:
        raise SchemaContractError(table, problems, version=live_version)
    change = SchemaChange(table=table, added=tuple(really_added), widened=tuple(widened), live_version=live_version)
    if change.added:
        log.warning(
            "table %s: adding column(s) %s; rows written before this run read them as null",
            table,
            ", ".join(f"{n} {t}" for n, t in change.added),
        )
    if change.widened:
        log.warning(
            "table %s: widening column(s) %s (declared in %s.widening)",
            table,
            ", ".join(f"{n} {o}->{t}" for n, o, t in change.widened),
            where,
        )
    return change


def _declared_problems(incoming, policy: SchemaPolicy, table: str, where: str) -> list[str]:
    """Declared output columns (``schema.columns``) the incoming data lacks or types differently."""
    problems = []
    types = {f.name.lower(): f.dataType.simpleString() for f in incoming.fields}
    for spec in policy.columns:
        actual = types.get(spec.name.lower())
        if actual is None:
            problems.append(
                f"declared column '{spec.name}' ({spec.type}) is missing from the data the job "
                f"produces. Fix: produce it again, or remove it from {where}.columns"
            )
        elif actual != spec.type:
            problems.append(
                f"declared column '{spec.name}' is {spec.type} in {where}.columns but the job produces "
                f"{actual}. Fix: change the declaration to {actual} if intended, or restore the type"
            )
    return problems


def live_schema(spark, path: str):
    """``(schema, version)`` of the Delta table at ``path`` from its log, or ``(None, None)``."""
    from featuremill.storage import io

    version = io.delta_version(spark, path)
    if version is None:
        return None, None
    return io.load_delta(spark, path).schema, version


def check_write(spark, df, path: str, policy: SchemaPolicy, *, table: str) -> SchemaChange:
    """Compare ``df``'s schema with the live table at ``path`` (see :func:`compare_schemas`)."""
    live, version = live_schema(spark, path)
    return compare_schemas(live, df.schema, policy, table=table, live_version=version)


def prepare_table(spark, path: str, change: SchemaChange, *, root: str) -> None:
    """Just before the write: enable Delta type widening when an accepted change widens a column.

    ``root`` is the warehouse root the table must lie under."""
    from featuremill.storage import io

    if not change.widened:
        return
    io.set_table_properties(spark, path, {"delta.enableTypeWidening": "true"}, root=root, what=f"table {change.table}")
    log.info(
        "table %s: enabled delta.enableTypeWidening for %s", change.table, ", ".join(n for n, _, _ in change.widened)
    )
