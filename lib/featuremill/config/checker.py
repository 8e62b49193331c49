"""Checking a YAML document: issues collected with their file and path, YAML 1.2 loading."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from featuremill.config.model import NAME_RE, parse_duration
from featuremill.core.errors import ConfigError, ConfigIssue

# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


class Checker:
    """Collects issues with their file and path while walking a YAML document."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[ConfigIssue] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, path, message))

    def warn(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, path, message, severity="warning"))

    def mapping(
        self, value: Any, path: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
    ) -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {kind_of(value)}")
            return None
        allowed = set(required) | set(optional)
        for key in value:
            if not isinstance(key, str):
                self.error(path, f"key {key!r} is not a string")
            elif key not in allowed:
                hint = _closest(key, allowed)
                self.error(
                    join_path(path, key),
                    "unknown key"
                    + (f" (did you mean {hint!r}?)" if hint else f"; allowed: {', '.join(sorted(allowed))}"),
                )
        for key in required:
            if key not in value:
                self.error(join_path(path, key), "is required")
        return value

    def string(
        self, value: Any, path: str, *, choices: tuple[str, ...] | None = None, identifier: bool = False
    ) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"expected a non-empty string, got {kind_of(value)}")
            return None
        if choices is not None and value not in choices:
            self.error(path, f"{value!r} is not one of {', '.join(choices)}")
            return None
        if identifier and not NAME_RE.match(value):
            self.error(path, f"{value!r} is not a valid name (letters, digits and _, not starting with a digit)")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected an integer, got {kind_of(value)}")
            return None
        if minimum is not None and value < minimum:
            self.error(path, f"{value} is below the minimum {minimum}")
            return None
        return value

    def positive_number(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.error(path, f"expected a positive number, got {kind_of(value)}")
            return None
        return float(value)

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {kind_of(value)}")
            return None
        return value

    def names(self, value: Any, path: str) -> tuple[str, ...] | None:
        """A column name or a list of column names."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.error(path, f"expected a column name or a non-empty list of names, got {kind_of(value)}")
            return None
        out = []
        for i, item in enumerate(items):
            name = self.string(item, f"{path}[{i}]" if isinstance(value, list) else path)
            if name is not None:
                out.append(name)
        if len(set(out)) != len(out):
            self.error(path, "lists a name more than once")
        return tuple(out)

    def duration(self, value: Any, path: str) -> int | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def raise_if_errors(self) -> None:
        errors = [i for i in self.issues if i.severity == "error"]
        if errors:
            raise ConfigError(self.issues)


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return match[0] if match else None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would turn keys such as ``on`` (a join's
    key columns) or values such as ``no``/``off`` (a country code, a filter value) into booleans."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_text(text: str) -> Any:
    """Parse YAML with 1.2 boolean rules (see :class:`_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Yaml12Loader)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), "", "file not found")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([ConfigIssue(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
