"""Exactly-once commits: a run key per unit of work, Delta idempotent writes, changed-input checks.

Every write of a job carries Delta's idempotent-write pair (see :class:`featuremill.storage.io.CommitTag`):

* ``txnAppId`` = the **run key** ``featuremill/<pipeline>/<job>/<target>/<start>/<end>``: the
  same job over the same dates for the same target always has the same key;
* ``txnVersion`` = the key's **generation**: 1 for the first write, one more for each
  ``--corrective`` re-run.

Delta commits nothing for a write whose ``txnVersion`` is not above the last one the table
recorded for that ``txnAppId``. So a retry after a crash between the Delta commit and the
ledger write (the job died, the scheduler re-ran it) cannot write twice.

Delta would also skip a re-run whose *inputs changed* (corrected raw files, rows fixed by hand),
silently. To make that impossible, each commit also stores the run's **input fingerprint** in
``commitInfo.userMetadata`` (a hash of what the run read plus the definition it applied, and the
inputs themselves, readable in ``DESCRIBE HISTORY``). Before writing, :class:`CommitGuard` looks
up the key's latest commit in each target table's log (:mod:`featuremill.storage.delta_log`):

* no commit for the key: write with generation 1 (or the generation the run's other tables use);
* a commit with the same fingerprint: the work is done; the run writes nothing, records the
  committed version in the ledger and reports ``already committed``;
* a commit with a different fingerprint: :class:`ChangedInputError`, before anything is
  written, naming what changed. ``--corrective`` writes generation ``last + 1`` instead.

What the fingerprint covers is up to each job (see the job modules); it is documented in
``docs/reliability.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from featuremill import __version__
from featuremill.core.errors import ChangedInputError, TableStateError
from featuremill.storage import io
from featuremill.storage.delta_log import Commit, latest_txn_commit

log = logging.getLogger(__name__)

METADATA_KEY = "featuremill"


def run_key(pipeline: str, job: str, target: str, start: dt.date | None, end: dt.date | None) -> str:
    """The stable identity of one unit of work, used as Delta ``txnAppId``."""
    return f"featuremill/{pipeline}/{job}/{target}/{start or '-'}/{end or '-'}"


def digest(payload: Any) -> str:
    """A short, stable hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _semantic(obj: Any, drop: tuple[str, ...] = ("description", "owner")) -> Any:
    """A dataclass tree as plain data without documentation fields (they do not change results)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _semantic(getattr(obj, f.name), drop) for f in dataclasses.fields(obj) if f.name not in drop}
    if isinstance(obj, (list, tuple)):
        return [_semantic(v, drop) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _semantic(v, drop) for k, v in obj.items()}
    return obj


def feature_set_definition(config, feature_set) -> dict[str, Any]:
    """Everything in the configuration that can change a feature set's values."""
    source = config.source(feature_set.source)
    dims = sorted({j.dimension for j in feature_set.joins})
    # how a join is executed (broadcast or sort-merge) changes no value
    semantic = _semantic(feature_set, drop=("description", "owner", "broadcast"))
    for join in semantic["joins"]:
        if not join["renames"]:  # a join without renamed columns keeps the definition it had before renames
            del join["renames"]
    return {
        "feature_set": semantic,
        "source": _semantic(source, drop=("description", "owner", "path", "options", "max_broadcast_bytes")),
        "dimensions": {
            d: _semantic(config.source(d), drop=("description", "owner", "path", "options", "max_broadcast_bytes"))
            for d in dims
        },
        "timezone": config.timezone,
        "code_version": __version__,
    }


def source_definition(config, source) -> dict[str, Any]:
    """Everything in the configuration that can change what ingest makes of a source."""
    return {
        "source": _semantic(source, drop=("description", "owner", "max_broadcast_bytes", "allow_empty")),
        "timezone": config.timezone,
        "code_version": __version__,
    }


@dataclass(frozen=True)
class PriorCommit:
    """A run key's latest commit in one table, as its log records it."""

    table: str
    table_version: int
    txn_version: int
    committed_at: dt.datetime
    run_id: str | None
    fingerprint: str | None
    inputs: Mapping[str, Any]
    versions: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_commit(cls, table: str, app_id: str, commit: Commit) -> PriorCommit:
        meta = commit.metadata.get(METADATA_KEY, {}) if isinstance(commit.metadata.get(METADATA_KEY), dict) else {}
        return cls(
            table=table,
            table_version=commit.version,
            txn_version=commit.txn_version(app_id) or 0,
            committed_at=commit.timestamp,
            run_id=meta.get("run_id"),
            fingerprint=meta.get("fingerprint"),
            inputs=meta.get("inputs") or {},
            versions={str(k): int(v) for k, v in (meta.get("versions") or {}).items() if v is not None},
        )


def commit_metadata(
    *,
    run_key: str,
    run_id: str,
    txn_version: int,
    fingerprint: str,
    inputs: Mapping[str, Any],
    versions: Mapping[str, int] | None = None,
) -> str:
    """The ``userMetadata`` JSON featuremill stores with each commit.

    ``inputs`` are fingerprinted; ``versions`` (the Delta versions the run read, for replay) are
    recorded but not part of the fingerprint.
    """
    return json.dumps(
        {
            METADATA_KEY: {
                "run_key": run_key,
                "run_id": run_id,
                "txn_version": txn_version,
                "fingerprint": fingerprint,
                "inputs": inputs,
                "versions": dict(versions or {}),
            }
        },
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )


def parse_commit_metadata(text: str | None) -> dict[str, Any]:
    """The featuremill part of a commit's ``userMetadata`` (``{}`` for other writers' commits)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    meta = value.get(METADATA_KEY) if isinstance(value, dict) else None
    return meta if isinstance(meta, dict) else {}


def describe_differences(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable lines for the leaves that differ between two input descriptions."""
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines.extend(describe_differences(a, b, prefix=f"{name}."))
        else:
            lines.append(f"{name}: {_short(a)} then, {_short(b)} now")
    return lines


def _short(value: Any) -> str:
    if value is None:
        return "absent"
    text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class CommitGuard:
    """Exactly-once bookkeeping for one run key over the Delta tables the run writes.

    ``tables`` maps a logical name (``features.customer_activity``) to a path. ``inputs``
    describes what the run read (file identities, row counts, the definition's hash): its
    digest is the fingerprint. ``versions`` (the Delta versions read) are stored with the commit
    but not fingerprinted: a version moves whenever anything is written to a table, also
    outside the rows a run reads. Call :meth:`plan` before writing, pass :meth:`tag` to each
    write of a table that :meth:`is_committed` says is not done, then :meth:`confirm`.
    """

    spark: Any
    run_key: str
    run_id: str
    inputs: Mapping[str, Any]
    tables: Mapping[str, str]
    versions: Mapping[str, int] = field(default_factory=dict)
    corrective: bool = False
    label: str = ""
    priors: dict[str, PriorCommit | None] = field(default_factory=dict)
    txn_version: int = 1
    planned: bool = False
    #: ``operationMetrics`` of the commits :meth:`confirm` found this run wrote, by table name
    confirmed_metrics: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return digest(self.inputs)

    def plan(self) -> CommitGuard:
        """Read each table's latest commit for the run key and decide what to write.

        Raises :class:`ChangedInputError` (nothing written yet) when a table holds this key's
        commit from different inputs and the run is not corrective.
        """
        self.priors = {}
        for name, path in self.tables.items():
            commit = latest_txn_commit(self.spark, path, self.run_key) if io.is_delta_table(self.spark, path) else None
            self.priors[name] = PriorCommit.from_commit(name, self.run_key, commit) if commit else None
        known = [p for p in self.priors.values() if p is not None]
        last = max((p.txn_version for p in known), default=0)
        if self.corrective:
            self.txn_version = last + 1
        else:
            changed = [p for p in known if p.fingerprint != self.fingerprint]
            if changed:
                raise ChangedInputError(self._changed_message(changed))
            self.txn_version = max(last, 1)
        self.planned = True
        done = [n for n in self.tables if self.is_committed(n)]
        if done:
            log.info(
                "%s: already committed to %s (run key %s, txnVersion %d); not writing %s again",
                self.label or self.run_key,
                ", ".join(done),
                self.run_key,
                self.txn_version,
                "it" if len(done) == 1 else "them",
            )
        return self

    def _changed_message(self, changed: list[PriorCommit]) -> str:
        lines = [
            f"{self.label or self.run_key}: already committed from different inputs, so Delta would skip "
            "this write as a duplicate (same txnAppId and txnVersion) and the change would be lost."
        ]
        for prior in changed:
            lines.append(
                f"  {prior.table}: version {prior.table_version} (txnVersion {prior.txn_version}, run "
                f"{prior.run_id or 'unknown'}, committed {prior.committed_at.isoformat(sep=' ')} UTC)"
            )
            diffs = describe_differences(prior.inputs, self.inputs)
            lines.extend(f"    {d}" for d in diffs[:12])
            if len(diffs) > 12:
                lines.append(f"    ... and {len(diffs) - 12} more differences")
            if not diffs and prior.fingerprint is None:
                lines.append("    (that commit carries no featuremill fingerprint to compare with)")
        lines.append(
            "If the new inputs are meant to replace what was committed, re-run with --corrective "
            f"(writes txnVersion {max(p.txn_version for p in changed) + 1}); otherwise there is nothing to do."
        )
        return "\n".join(lines)

    def is_committed(self, table: str) -> bool:
        """True when ``table`` already holds this key's commit for these inputs (skip its write)."""
        self._require_plan()
        prior = self.priors.get(table)
        return (
            not self.corrective
            and prior is not None
            and prior.fingerprint == self.fingerprint
            and prior.txn_version >= self.txn_version
        )

    @property
    def all_committed(self) -> bool:
        return all(self.is_committed(name) for name in self.tables)

    def prior(self, table: str) -> PriorCommit | None:
        return self.priors.get(table)

    def tag(self, table: str) -> io.CommitTag:
        """The ``txnAppId``/``txnVersion``/``userMetadata`` for the write to ``table``."""
        self._require_plan()
        return io.CommitTag(
            app_id=self.run_key,
            version=self.txn_version,
            user_metadata=commit_metadata(
                run_key=self.run_key,
                run_id=self.run_id,
                txn_version=self.txn_version,
                fingerprint=self.fingerprint,
                inputs=self.inputs,
                versions=self.versions,
            ),
        )

    def confirm(self, table: str, *, empty: bool = False) -> tuple[int, bool]:
        """After a tagged write: ``(table version holding this key's data, written by this run)``.

        Delta may have skipped the write because a concurrent run with the same key committed
        first: with the same fingerprint that is fine (returns its version, ``False``); otherwise
        :class:`~featuremill.core.errors.TableStateError`. ``empty``: the write had no rows, and Delta
        records no commit for a replace of a range that held nothing by nothing; then the table's
        current version is returned (the write is a no-op however often it is repeated).
        """
        path = self.tables[table]
        latest = io.latest_commit(self.spark, path)
        if latest is not None and parse_commit_metadata(latest.user_metadata).get("run_id") == self.run_id:
            self.confirmed_metrics[table] = latest.operation_metrics
            return latest.version, True
        commit = latest_txn_commit(self.spark, path, self.run_key)
        prior = PriorCommit.from_commit(table, self.run_key, commit) if commit else None
        if prior is not None and prior.run_id == self.run_id:
            return prior.table_version, True
        if empty and (prior is None or prior.fingerprint == self.fingerprint):
            return (latest.version if latest is not None else -1), False
        if prior is not None and prior.fingerprint == self.fingerprint:
            log.warning(
                "%s: %s was committed by concurrent run %s with the same inputs; this run wrote nothing",
                self.label or self.run_key,
                table,
                prior.run_id,
            )
            return prior.table_version, False
        raise TableStateError(
            f"{self.label or self.run_key}: Delta did not commit the write to {table} ({path}): the table already "
            f"records txnVersion >= {self.txn_version} for txnAppId {self.run_key!r}"
            + (
                f" (version {prior.table_version}, run {prior.run_id})"
                if prior
                else ", in a commit older than its retained log"
            )
            + ". Re-run with --corrective to write a new generation."
        )

    def _require_plan(self) -> None:
        if not self.planned:
            raise RuntimeError("CommitGuard.plan() must run before writing")
