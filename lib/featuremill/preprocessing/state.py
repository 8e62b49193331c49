"""The fitted state: every statistic preprocessing learned, as a small JSON-serialisable object.

A :class:`FittedState` is self-contained: :func:`featuremill.preprocessing.apply_preprocessing`
needs nothing but the state and a DataFrame, so training-set generation, the feature job and any
serving system apply exactly the same numbers. States are stored versioned in a Delta table
(one row per ``name`` and ``version``, the state as JSON text) by :mod:`featuremill.preprocessing.store`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

STATE_FORMAT = 1


@dataclass(frozen=True)
class ImputeState:
    """Nulls (and NaN) become ``fill``; ``indicator_column`` (int 0/1) marks the rows that were missing."""

    strategy: str
    fill: Any
    indicator_column: str | None = None


@dataclass(frozen=True)
class OutlierState:
    """Values outside ``[lower, upper]`` are clipped to the bound (``clip``) and/or flagged (int 0/1)."""

    method: str
    lower: float | None
    upper: float | None
    clip: bool = True
    flag_column: str | None = None


@dataclass(frozen=True)
class ScaleState:
    """``(x - center) / scale``; ``scale`` is never 0 (a constant column gets 1, as in scikit-learn)."""

    method: str
    center: float
    scale: float


@dataclass(frozen=True)
class EncodeState:
    """A fitted categorical encoding. ``levels`` are category values as strings (``None`` = null)."""

    method: str
    levels: tuple[str | None, ...] = ()
    rare_levels: tuple[str, ...] = ()
    overflow: bool = False
    output_columns: tuple[str, ...] = ()
    buckets: int = 0
    # target encoding: per level, the encoding of each out-of-fold group then the full-data value
    encodings: tuple[tuple[float, ...], ...] = ()
    rare_encoding: tuple[float, ...] | None = None
    prior: tuple[float, ...] = ()
    smoothing: float = 0.0

    @property
    def has_rare(self) -> bool:
        return bool(self.rare_levels) or self.overflow


@dataclass(frozen=True)
class ColumnState:
    """Everything fitted for one input column, applied in the order impute, outliers, scale / encode."""

    column: str
    kind: str  # numeric | categorical
    input_type: str
    impute: ImputeState | None = None
    outliers: OutlierState | None = None
    scale: ScaleState | None = None
    encode: EncodeState | None = None
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Columns this input becomes, in output order."""
        if self.encode is not None and self.encode.method == "one_hot":
            main: tuple[str, ...] = self.encode.output_columns
        else:
            main = (self.column,)
        extra = []
        if self.impute is not None and self.impute.indicator_column:
            extra.append(self.impute.indicator_column)
        if self.outliers is not None and self.outliers.flag_column:
            extra.append(self.outliers.flag_column)
        return main + tuple(extra)


@dataclass(frozen=True)
class FittedState:
    """A versioned preprocessing fit. ``version`` is assigned when the state is stored."""

    name: str
    columns: tuple[ColumnState, ...]
    label: str | None = None
    key: tuple[str, ...] = ()
    folds: int = 5
    seed: int = 42
    remainder: str = "passthrough"
    pipeline: str = ""
    training_ref: str = ""
    training_version: int | None = None
    data_fingerprint: str = ""
    config_fingerprint: str = ""
    row_count: int = 0
    code_version: str = ""
    warnings: tuple[str, ...] = ()
    version: int | None = None
    created_at: str | None = None
    format: int = STATE_FORMAT

    def column(self, name: str) -> ColumnState:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(f"fitted state {self.name!r} has no column {name!r}")

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns)

    @property
    def uses_folds(self) -> bool:
        return any(c.encode is not None and c.encode.method == "target" for c in self.columns)

    @property
    def fingerprint(self) -> str:
        """Hash of what the state does: fitted numbers, config and training-data content (not when,
        from which table version or as which state version it was stored).

        Floats are rounded to 12 significant digits first: a re-fit on the same data may sum in
        another order and differ in the last bits, which must not make a new version."""
        body = self.to_dict()
        # where and when the data was read is provenance, not behaviour: the same rows re-written
        # as a new table version give the same data_fingerprint and the same state
        for volatile in ("version", "created_at", "training_ref", "training_version", "code_version"):
            body.pop(volatile, None)
        return _sha256(_rounded(body))

    def with_version(self, version: int, created_at: str) -> FittedState:
        return dataclasses.replace(self, version=version, created_at=created_at)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False, default=str)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> FittedState:
        if body.get("format", STATE_FORMAT) > STATE_FORMAT:
            raise ValueError(f"fitted state format {body['format']} is newer than this featuremill understands")
        columns = []
        for c in body["columns"]:
            enc = c.get("encode")
            if enc is not None:
                enc = EncodeState(
                    **{
                        **enc,
                        "levels": tuple(enc["levels"]),
                        "rare_levels": tuple(enc["rare_levels"]),
                        "output_columns": tuple(enc["output_columns"]),
                        "encodings": tuple(tuple(e) for e in enc["encodings"]),
                        "rare_encoding": tuple(enc["rare_encoding"]) if enc["rare_encoding"] is not None else None,
                        "prior": tuple(enc["prior"]),
                    }
                )
            columns.append(
                ColumnState(
                    column=c["column"],
                    kind=c["kind"],
                    input_type=c["input_type"],
                    impute=ImputeState(**c["impute"]) if c.get("impute") else None,
                    outliers=OutlierState(**c["outliers"]) if c.get("outliers") else None,
                    scale=ScaleState(**c["scale"]) if c.get("scale") else None,
                    encode=enc,
                    stats=dict(c.get("stats") or {}),
                )
            )
        top = {k: v for k, v in body.items() if k != "columns"}
        top["key"] = tuple(top.get("key") or ())
        top["warnings"] = tuple(top.get("warnings") or ())
        return cls(columns=tuple(columns), **top)

    @classmethod
    def from_json(cls, text: str) -> FittedState:
        return cls.from_dict(json.loads(text))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _sha256(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, allow_nan=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spec_fingerprint(spec: Any) -> str:
    """Stable hash of a (frozen dataclass) configuration object."""
    return _sha256(dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else spec)
