"""Cron schedules: checking, a plain-words description, and the Quartz / AWS dialects.

A pipeline's ``dag.schedule`` is a standard 5-field cron expression (minute hour day-of-month
month day-of-week) or a preset (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``),
evaluated in the pipeline's time zone. Airflow takes it as is; Databricks wants Quartz
(``sec min hour dom month dow``, days of week 1-7 from Sunday, one of dom/dow ``?``); EventBridge
Scheduler wants ``cron(min hour dom month dow year)`` with the same day-of-week rules.
"""

from __future__ import annotations

import re

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_ITEM_RE = re.compile(r"^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?$")


class CronError(ValueError):
    """A schedule that is not a cron expression this module understands."""


def expand(expression: str) -> str:
    """The 5-field form of ``expression`` (presets expanded), after checking every field."""
    text = " ".join(str(expression).split())
    text = PRESETS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} is not a cron expression: expected 5 fields "
            "(minute hour day-of-month month day-of-week) or a preset such as @daily"
        )
    for value, (name, low, high) in zip(fields, _FIELDS):
        names = _MONTHS if name == "month" else _DAYS if name == "day of week" else {}
        for item in value.split(","):
            match = _ITEM_RE.match(item)
            if not match:
                raise CronError(f"{expression!r}: {name} field {value!r} is not valid")
            base, step = match.group(1), match.group(2)
            if step is not None and int(step) <= 0:
                raise CronError(f"{expression!r}: {name} step must be positive")
            if base == "*":
                continue
            for part in base.split("-"):
                number = names.get(part.upper()) if not part.isdigit() else int(part)
                if number is None or not low <= number <= high:
                    raise CronError(f"{expression!r}: {name} value {part!r} is outside {low}-{high}")
    return text


def _map_dow(value: str, mapper) -> str:
    out = []
    for item in value.split(","):
        match = _ITEM_RE.match(item)
        assert match is not None
        base, step = match.group(1), match.group(2)
        if base != "*":
            numbers = [int(p) if p.isdigit() else _DAYS[p.upper()] for p in base.split("-")]
            mapped = [mapper(n) for n in numbers]
            if len(numbers) == 2 and int(mapped[1]) < int(mapped[0]):
                # 5-7 (Fri..Sun) becomes 6,7,1: the range wraps past Saturday.
                mapped = [mapper(n) for n in range(numbers[0], numbers[1] + 1)]
                base = ",".join(mapped) if step is None else "-".join([mapped[0], "7"])
            else:
                base = "-".join(mapped)
        out.append(base + (f"/{step}" if step else ""))
    return ",".join(out)


def _quartz_fields(expression: str) -> tuple[str, str, str, str, str]:
    minute, hour, dom, month, dow = expand(expression).split(" ")
    if dom != "*" and dow != "*":
        raise CronError(
            f"{expression!r} restricts both day of month and day of week; Quartz/AWS cron "
            "cannot express cron's 'either' rule, split it into two schedules"
        )
    # Quartz and AWS number days 1-7 from Sunday; cron 0-7 from Sunday (7 = Sunday again).
    dow = "?" if dow == "*" else _map_dow(dow, lambda d: str(d % 7 + 1))
    if dow != "?":
        dom = "?"
    return minute, hour, dom, month, dow


def to_quartz(expression: str) -> str:
    """Databricks ``quartz_cron_expression``: ``'30 2 * * *'`` -> ``'0 30 2 * * ?'``."""
    minute, hour, dom, month, dow = _quartz_fields(expression)
    return f"0 {minute} {hour} {dom} {month} {dow}"


def to_aws_cron(expression: str) -> str:
    """EventBridge Scheduler expression: ``'30 2 * * *'`` -> ``'cron(30 2 * * ? *)'``."""
    minute, hour, dom, month, dow = _quartz_fields(expression)
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def describe(expression: str, timezone: str = "UTC") -> str:
    """Plain words for common schedules (``daily at 02:30 UTC``); the cron text otherwise."""
    minute, hour, dom, month, dow = expand(expression).split(" ")
    simple = minute.isdigit() and hour.isdigit()
    at = f"{int(hour):02d}:{int(minute):02d} {timezone}" if simple else ""
    if simple and dom == "*" and month == "*" and dow == "*":
        return f"daily at {at}"
    if simple and dom == "*" and month == "*" and dow.isdigit():
        day = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"][int(dow) % 7]
        return f"weekly on {day} at {at}"
    if simple and dom.isdigit() and month == "*" and dow == "*":
        return f"monthly on day {dom} at {at}"
    if minute.isdigit() and hour == "*" and dom == "*" and month == "*" and dow == "*":
        return f"hourly at minute {int(minute)}"
    return f"cron '{expand(expression)}' ({timezone})"
