"""Safe SQL text: quoted identifiers and literals for the few places that need SQL strings.

Config values (column names, filter values, paths) never reach a query unquoted: identifiers are
wrapped in backticks with embedded backticks doubled, literals go through :func:`literal`.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any


def quote_identifier(name: str) -> str:
    """``amount`` -> ```amount```; a backtick inside the name is doubled."""
    return "`" + str(name).replace("`", "``") + "`"


def col(name: str):
    """``F.col`` for a plain column name, even when it contains dots, spaces or quotes."""
    from pyspark.sql import functions as F

    return F.col(quote_identifier(name))


def literal(value: Any) -> str:
    """A SQL literal for a Python scalar; strings are escaped, not interpolated."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"CAST('{value}' AS DOUBLE)"
        return repr(value) + "D"
    if isinstance(value, Decimal):
        return f"{value}BD"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP'{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def delta_path_identifier(path: str) -> str:
    """``delta.`/path/to/table``` for SQL statements on path-based tables."""
    return "delta." + quote_identifier(path)
