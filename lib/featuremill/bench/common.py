"""Shared pieces of the benchmark suite: sizes, timing, plan inspection, machine description.

Timing rule used everywhere: the methods compared in one figure run round-robin in the same Spark
application (``warmup`` untimed rounds, then ``runs`` timed ones) and the figure is the median,
so a change of load on a shared machine hits every method alike.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_size(text: str | int) -> int:
    """``"5M"`` -> 5_000_000, ``"20k"`` -> 20_000, ``"20000"`` -> 20_000."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"cannot read {text!r} as a size: use a number, optionally with k or M (e.g. 5M)")
    number, unit = float(match.group(1)), match.group(2).lower()
    value = int(round(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit]))
    if value <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return value


def format_size(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


@dataclass
class Timed:
    """Seconds of one method across the timed rounds."""

    name: str
    seconds: list[float] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "median_s": self.median,
            "runs_s": [round(s, 3) for s in self.seconds],
            **({"detail": self.detail} if self.detail else {}),
        }


def time_round_robin(
    actions: Mapping[str, Callable[[], object]],
    *,
    runs: int,
    warmup: int,
    before: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, Timed]:
    """Run every action ``warmup + runs`` times, interleaved; time only the timed rounds.

    ``before[name]`` (optional) runs untimed before each run of ``name`` (e.g. restoring a table).
    The last return value of each action is kept in ``Timed.detail["result"]`` when it is a dict.
    """
    out = {name: Timed(name) for name in actions}
    for round_no in range(warmup + runs):
        for name, action in actions.items():
            if before and name in before:
                before[name]()
            began = time.perf_counter()
            result = action()
            elapsed = time.perf_counter() - began
            if round_no >= warmup:
                out[name].seconds.append(elapsed)
            if isinstance(result, dict):
                out[name].detail["result"] = result
    return out


def run_noop(df) -> None:
    """Execute the whole DataFrame without bringing rows to the driver."""
    df.write.format("noop").mode("overwrite").save()


def plan_operators(df) -> dict[str, int]:
    """Count Exchange, Sort and Window operators in the physical plan Spark would execute.

    Reads the plan text (``explain`` output), which works on Spark 3.5 and 4.x alike; AQE's final
    plan is not needed since AQE never adds Exchanges or Sorts to a plan without joins.
    """
    text = df._jdf.queryExecution().executedPlan().toString()
    counts = {"Exchange": 0, "Sort": 0, "Window": 0}
    for line in text.splitlines():
        node = line.strip().lstrip(":+- ").split(" ", 1)[0]
        name = node.split("(", 1)[0]
        for key in counts:
            if name == key or (key == "Exchange" and name in ("ShuffleExchange", "Exchange")):
                counts[key] += 1
    return counts


def explain_text(df, mode: str = "formatted") -> str:
    """``df.explain(mode)`` as a string (it prints otherwise)."""
    return df._jdf.queryExecution().explainString(
        df.sparkSession._jvm.org.apache.spark.sql.execution.ExplainMode.fromString(mode)
    )


def machine(spark=None) -> dict:
    """Cores, memory, load average and versions: what the figures were measured on."""
    info = {
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
    }
    if spark is not None:
        conf = spark.conf
        info.update(
            {
                "spark": spark.version,
                "java": spark.sparkContext._jvm.java.lang.System.getProperty("java.version"),
                "master": spark.sparkContext.master,
                "driver_memory": spark.sparkContext.getConf().get("spark.driver.memory", "1g (default)"),
                "shuffle_partitions": conf.get("spark.sql.shuffle.partitions"),
                "adaptive": conf.get("spark.sql.adaptive.enabled"),
            }
        )
    return info


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Median over rounds of ``a[i] / b[i]``: the runs of one round ran back to back, so their
    ratio is robust to load that changes between rounds (a ratio of medians is not)."""
    pairs = [x / y for x, y in zip(a, b) if y]
    return statistics.median(pairs) if pairs else None


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
