"""The helpers both report pages share: JSON cleaning, number text, and offline SVG charts."""

from __future__ import annotations

import json
import math
import re

from featuremill.core.report_html import bar_chart, cdf_chart, column_chart, fmt_number, heatmap, json_safe


def test_json_safe_turns_non_finite_numbers_into_null_at_any_depth():
    data = {"a": math.nan, "b": [1.5, math.inf, (-math.inf, 2)], "c": {"d": 3, "e": "x"}}
    cleaned = json_safe(data)
    assert cleaned == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": 3, "e": "x"}}
    json.dumps(cleaned, allow_nan=False)  # raises on any NaN/inf left


def test_fmt_number_significant_digits_and_missing_text():
    assert [fmt_number(v) for v in (0.5, 0.7, 1234.5678, 1e-5, None)] == ["0.5", "0.7", "1.23e+03", "1e-05", "n/a"]
    assert fmt_number(-math.inf) == "-inf" and fmt_number(0.123456, 4) == "0.1235"
    assert fmt_number(None, missing="") == ""


def test_bar_chart_draws_one_bar_per_finite_value_with_its_text():
    svg = bar_chart(
        [("a", 2.0, "#111"), ("b", None, "#222"), ("c", math.nan, "#333"), ("d", -1.0, "#444")],
        value_text=lambda v: f"{v:+.1f}",
    )
    assert re.findall(r'fill="(#\d{3})"><title>', svg) == ["#111", "#444"]
    assert ">+2.0<" in svg and ">-1.0<" in svg
    # the negative bar starts left of the zero line, the positive one at it
    xs = [float(x) for x in re.findall(r'<rect x="([\d.]+)"', svg)]
    zero = float(re.search(r'<line x1="([\d.]+)" x2="\1"', svg).group(1))
    assert xs[0] == zero and xs[1] < zero
    assert bar_chart([("a", None, "#111")]) == ""


def test_charts_reference_nothing_outside_the_page():
    charts = [
        bar_chart([("a", 1.0, "#111")], title="t", errors={"a": 0.1}),
        column_chart(["x", "y"], [("r", [0.2, 0.8], "#111"), ("c", [0.5, None], "#222")], rotate=True, percent=True),
        cdf_chart([([1.0, 2.0, 3.0], "#111", 2), ([2.0, 3.0, 5.0], "#222", 1.5)]),
        heatmap(["a", "b"], [[1.0, None], [-0.5, 1.0]]),
    ]
    for svg in charts:
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "http" not in svg and "<script" not in svg and "href" not in svg
