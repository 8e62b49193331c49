"""Window-feature benchmark: 12 rolling features against 1, same events, same transform.

Both frames come from :func:`featuremill.transforms.features.with_window_features` (the feature job's
transform) over the typed demo events, customer as entity. The 12 features cover every rolling
function (count, sum, mean, stddev, min, max), each over two of the four ranges (1h, 1d, 7d,
30d), each range used three times; the 1 is ``sum(amount)`` over 7 days. A 24-feature frame (all
six functions over all four ranges) is timed beside them for the trend. The plan of the
12-feature frame is inspected: the target is one Exchange and one Sort.
"""

from __future__ import annotations

from featuremill.bench.common import Timed, explain_text, paired_ratio, plan_operators, run_noop, time_round_robin
from featuremill.config import FeatureSpec

FUNCTIONS = ("count", "sum", "mean", "stddev", "min", "max")
RANGES = (("1h", 3600), ("1d", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400))


def _spec(function: str, window: str, seconds: int) -> FeatureSpec:
    return FeatureSpec(
        name=f"{function}_{window}",
        function=function,
        description="",
        owner="",
        version=1,
        column=None if function == "count" else "amount",
        window=window,
        window_seconds=seconds,
    )


def feature_sets() -> dict[str, list[FeatureSpec]]:
    """``"1"``, ``"12"`` and ``"24"`` -> the features of each frame."""
    twelve = [_spec(f, w, s) for j, f in enumerate(FUNCTIONS) for r, (w, s) in enumerate(RANGES) if (j + r) % 2 == 0]
    return {
        "1": [_spec("sum", "7d", 7 * 86400)],
        "12": twelve,
        "24": [_spec(f, w, s) for f in FUNCTIONS for w, s in RANGES],
    }


def frames(spark, events_path: str) -> dict:
    """Frame name -> a function building that frame (not executed)."""
    from featuremill.transforms.features import with_window_features

    def build(features):
        def make():
            events = spark.read.parquet(events_path)
            return with_window_features(
                events, entity=["customer_id"], event_time="event_ts", order_key=["event_id"], features=features
            )

        return make

    return {f"{name} feature{'s' if name != '1' else ''}": build(features) for name, features in feature_sets().items()}


def run(spark, events_path: str, *, runs: int, warmup: int) -> dict:
    """Time the frames round-robin; return timings, the ratio 12/1 and the 12-feature plan."""
    built = frames(spark, events_path)
    twelve = built["12 features"]()
    operators = plan_operators(twelve)
    timed: dict[str, Timed] = time_round_robin(
        {name: (lambda make=make: run_noop(make())) for name, make in built.items()}, runs=runs, warmup=warmup
    )
    one, many = timed["1 feature"], timed["12 features"]
    return {
        "timings": {name: t.as_dict() for name, t in timed.items()},
        # medians of per-round ratios (common.paired_ratio), then the ratio of the medians
        "ratio_12_to_1": paired_ratio(many.seconds, one.seconds),
        "ratio_24_to_1": paired_ratio(timed["24 features"].seconds, one.seconds),
        "ratio_of_medians_12_to_1": many.median / one.median if one.median else None,
        "plan_12": operators,
        "features_12": [f.name for f in feature_sets()["12"]],
        "explain_12": explain_text(twelve),
    }
