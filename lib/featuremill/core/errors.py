"""Named exceptions raised at the library's boundaries.

Each message says what is wrong and what to change; callers (the CLI, the jobs) print them as is.
"""

from __future__ import annotations

from dataclasses import dataclass


class FeaturemillError(Exception):
    """Base class of every error the library raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, located by file and a path inside it."""

    file: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {prefix}{self.message}"


class ConfigError(FeaturemillError):
    """The pipeline or environment configuration is invalid; carries every issue found."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class InputDataError(FeaturemillError):
    """Input data cannot be processed at all (not a per-row problem that quarantine absorbs)."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None, value: str | None = None):
        self.file = file
        self.field = field
        self.value = value
        parts = [message]
        if file:
            parts.append(f"file: {file}")
        if field:
            parts.append(f"field: {field}")
        if value is not None:
            parts.append(f"value: {value!r}")
        super().__init__("; ".join(parts))


class SessionError(FeaturemillError):
    """The Spark session lacks something the jobs need (for example the Delta extension)."""


class BroadcastTooLargeError(FeaturemillError):
    """A dimension table is larger than the configured broadcast limit."""


class JoinColumnClashError(FeaturemillError):
    """A joined dimension column's name is already a column of the frame it is joined to."""


class TableStateError(FeaturemillError):
    """A Delta table is missing or in a state the job cannot proceed from."""


class ChangedInputError(FeaturemillError):
    """A run key was already committed from different inputs; re-running needs ``--corrective``."""


class ReplayWindowError(FeaturemillError):
    """A replay needs table versions outside the pipeline's replay window (or no longer retained)."""


class ReplayError(FeaturemillError):
    """A run cannot be replayed as asked (unknown run, not a feature run, changed definition...)."""


class TrainingSetError(FeaturemillError):
    """A training set cannot be built as asked (spine, feature versions, manifest, registry)."""


class SchemaContractError(FeaturemillError):
    """Incoming data would change a table's schema in a way its contract refuses.

    ``problems`` holds one line per column (name, old type, new type, the fix); nothing was written.
    """

    def __init__(self, table: str, problems: list[str], *, version: int | None = None):
        self.table = table
        self.problems = list(problems)
        where = f"table {table}" + (f" (live Delta version {version})" if version is not None else "")
        super().__init__(f"{where}: schema change refused, nothing was written:\n  - " + "\n  - ".join(self.problems))


class QualityRuleFailed(FeaturemillError):
    """One or more ``fail`` quality rules did not hold; the job stopped before writing any table.

    ``failures`` holds a :class:`featuremill.quality.rules.RuleResult` per failed rule.
    """

    def __init__(self, failures: list):
        self.failures = list(failures)
        lines = [f.describe() for f in self.failures]
        super().__init__(
            f"{len(lines)} quality rule(s) failed; no output table was changed:\n  - " + "\n  - ".join(lines)
        )


class CommitConflictError(FeaturemillError):
    """A Delta write kept losing optimistic-concurrency races; it was retried and not committed."""

    def __init__(self, message: str, *, path: str, attempts: int):
        self.path = path
        self.attempts = attempts
        super().__init__(message)


class WritePathError(FeaturemillError):
    """A write was asked for a path outside the environment's warehouse root; nothing was written."""


class PreprocessingError(FeaturemillError):
    """A preprocessing fit or apply cannot proceed (missing column, wrong type, no label values)."""


class SelectionError(FeaturemillError):
    """Feature selection cannot proceed (no usable features, bad label)."""


class ServingError(FeaturemillError):
    """A Feast repository or an online materialization cannot be built as asked (unmappable type,
    missing table, definition hash that differs from the applied repository, unknown feature)."""


class OnlineStoreError(FeaturemillError):
    """The online store is unreachable or refused a write; nothing was recorded as materialized."""
