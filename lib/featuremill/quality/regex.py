"""Regex rules: the subset of patterns that mean the same in Python and in Spark, and bounded.

``featuremill validate`` checks a ``regex`` rule without Spark, in Python; the rule runs in Spark
as ``rlike``, with Java's ``java.util.regex``. The two engines agree on the common core (literals,
classes, ``\\d \\w \\s \\b``, anchors ``^ $ \\A``, groups, alternation, greedy, lazy and possessive
quantifiers, atomic groups, look-around, backreferences, inline flags ``i m s``) but not on
everything, so :func:`pattern_problem` refuses what is outside that core:

* syntax only one engine has: Python's named groups ``(?P<name>...)``, conditionals ``(?(1)...)``,
  comments ``(?#...)``, inline flags other than ``i``, ``m``, ``s``;
* syntax both accept with different meanings: ``\\Z`` (Java: before a final line break; Python:
  at the very end), ``\\v`` (Java: any vertical whitespace; Python: the vertical tab), ``[`` inside
  a character class (Java: a nested class, a union; Python: a literal) and ``&&`` inside a class
  (Java: an intersection);
* a pattern that can take exponential time: an unbounded quantifier (``*``, ``+``, ``{n,}``)
  inside another one, as in ``(a+)+$``. On a long string that does not match, such a pattern
  backtracks through every way of splitting it (an executor stuck for hours on one row). Write
  the inner or outer quantifier possessive (``(a++)+``) or the group atomic (``(?>a+)+``), which
  never backtrack into it, or rewrite the pattern (``a+$``). Overlapping alternatives under a
  quantifier (``(a|a)+``) are not detected.

At the start of every job that evaluates rules, :func:`check_in_spark` compiles each pattern with
Spark's own engine, so a pattern Java refuses fails the job before any data is read, naming the
rule, not in the middle of a write.
"""

from __future__ import annotations

import re

#: inline flags both engines read the same way
_COMMON_FLAGS = set("ims-")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is outside the supported subset, or ``None`` when it is inside."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # nested sets: refused below with a reason
            re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    problem = _syntax_problem(pattern)
    if problem:
        return problem
    if _nested_unbounded(pattern):
        return (
            "an unbounded quantifier inside another one (as in (a+)+) can backtrack for exponential time on a "
            "long value that does not match; make one of them possessive (a++) or the group atomic ((?>...)), "
            "or rewrite the pattern (see docs/quality.md)"
        )
    return None


def _syntax_problem(pattern: str) -> str | None:
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "Z":
                return "\\Z means 'before a final line break' in Spark (Java) but 'at the very end' in Python; use $"
            if nxt == "v":
                return "\\v is any vertical whitespace in Spark (Java) but only the vertical tab in Python; use \\x0b"
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[":
                return (
                    "'[' inside a character class is a nested class in Spark (Java) but a literal in Python; escape it"
                )
            elif c == "&" and pattern[i + 1 : i + 2] == "&":
                return "'&&' inside a character class is an intersection in Spark (Java); escape it"
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern[i : i + 1] == "^":
                i += 1
            if pattern[i : i + 1] == "]":  # a leading ] is a literal in both
                i += 1
            continue
        if c == "(" and pattern[i + 1 : i + 2] == "?":
            rest = pattern[i + 2 :]
            if rest.startswith("P"):
                return "(?P...) named groups are Python-only; use a plain group"
            if rest.startswith("("):
                return "(?(...)) conditionals are Python-only"
            if rest.startswith("#"):
                return "(?#...) comments are Python-only"
            flags = re.match(r"[A-Za-z-]+(?=[:)])", rest)
            if flags and not set(flags.group(0)) <= _COMMON_FLAGS:
                return (
                    f"inline flags (?{flags.group(0)}) differ between Spark (Java) and Python; "
                    "only i, m and s are supported"
                )
        i += 1
    return None


def _nested_unbounded(pattern: str) -> bool:
    """Whether a quantifier with no upper bound sits inside another one (backtracking into it)."""
    try:
        from re import _constants as sre_constants
        from re import _parser as sre_parse
    except ImportError:  # Python < 3.11
        import sre_constants  # type: ignore[no-redef]
        import sre_parse  # type: ignore[no-redef]

    repeats = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
    # possessive quantifiers and atomic groups never backtrack into what they matched
    opaque = {getattr(sre_constants, n) for n in ("POSSESSIVE_REPEAT", "ATOMIC_GROUP") if hasattr(sre_constants, n)}

    def walk(items, inside: bool) -> bool:
        for op, av in items:
            if op in opaque:
                continue
            if op in repeats:
                _low, high, sub = av
                unbounded = high == sre_constants.MAXREPEAT
                if unbounded and inside:
                    return True
                if walk(sub, inside or unbounded):
                    return True
            elif op == sre_constants.SUBPATTERN:
                if walk(av[-1], inside):
                    return True
            elif op == sre_constants.BRANCH:
                if any(walk(sub, inside) for sub in av[1]):
                    return True
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                if walk(av[1], inside):
                    return True
        return False

    return walk(sre_parse.parse(pattern), False)
