"""Regex rules run as they were validated: validation (no Spark) accepts only the subset Python
and Spark's Java engine read alike and refuses patterns that can backtrack exponentially; the
job start compiles every pattern with Spark's engine."""

from __future__ import annotations

import time

import pytest

from featuremill.cli import main
from featuremill.core.errors import ConfigError
from featuremill.quality.regex import pattern_problem
from featuremill.quality.rules import check_patterns_in_spark as check_in_spark
from tests.unit.test_quality_config import _doc, _errors, _load


def _regex_rule(pattern):
    return _doc(
        {
            "tables": {
                "validated.tx": {"rules": [{"check": "regex", "column": "id", "pattern": pattern, "severity": "warn"}]}
            }
        }
    )


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("(a+)+$", "unbounded quantifier inside another one"),
        ("^(\\w+\\s?)*$", "unbounded quantifier inside another one"),
        ("(x|(ab*)*)c", "unbounded quantifier inside another one"),
        ("(?P<year>\\d{4})", "Python-only"),
        ("abc\\Z", "\\Z means"),
        ("[a[b]]", "nested class"),
        ("[a-z&&[^x]]", "intersection"),
        ("[a-z&&b]", "intersection"),
        ("(?x) a b", "inline flags (?x)"),
        ("([a-z", "not a valid regular expression"),
    ],
)
def test_patterns_outside_the_common_subset_are_refused_with_their_path(project, pattern, expected):
    errors = _errors(project, _regex_rule(pattern))
    assert any("quality.tables.validated.tx.rules[0].pattern" in e and expected in e for e in errors), errors


@pytest.mark.parametrize(
    "pattern", ["^[A-Z][0-9]{3}$", "^C", "(?i)^ab+c$", "(a++)+$", "(?>a+)+$", "(ab|cd)*x", "(a{1,3})+"]
)
def test_common_patterns_are_accepted(pattern):
    assert pattern_problem(pattern) is None


def test_a_catastrophic_pattern_is_refused_at_validation_before_it_can_run(project):
    # (a+)+$ on "aaaa...a!" takes exponential time in a backtracking engine (Java's, Python's)
    path = project / "conf" / "pipelines" / "p.yaml"
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"rules\[0\]\.pattern: an unbounded quantifier"):
        _load(project, _regex_rule("(a+)+$"))
    assert main(["validate", str(path)]) != 0
    assert time.monotonic() - started < 5


def test_job_start_compiles_every_pattern_with_spark(spark, project):
    # Python reads x{,3} as x{0,3}; Java refuses it: validation passes, the job start does not
    config = _load(project, _regex_rule("^x{,3}$"))
    with pytest.raises(ConfigError) as err:
        check_in_spark(spark, config)
    [issue] = err.value.issues
    assert (
        issue.path == "quality.tables.validated.tx.rules[0].pattern" and "Spark's (Java) regex engine" in issue.message
    )
    check_in_spark(spark, _load(project, _regex_rule("^[A-Z][0-9]{3}$")))  # fine: no error


def test_the_accepted_rewrite_runs_fast_in_spark_on_a_long_non_matching_value(spark):
    from pyspark.sql import functions as F

    value = "a" * 30 + "!"  # (a+)+$ would take about 2^30 steps here
    assert pattern_problem("(a++)+$") is None
    started = time.monotonic()
    [row] = spark.range(1).select(F.lit(value).rlike("(a++)+$").alias("m")).collect()
    assert row["m"] is False
    assert time.monotonic() - started < 60
