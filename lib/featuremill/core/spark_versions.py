"""Which Delta Lake build goes with which Spark: Maven coordinates and the tested version matrix.

The matrix (also in ``docs/deployment.md``):

============  ===========  =====  ==============================================
delta-spark   Spark        Scala  Maven artifact
============  ===========  =====  ==============================================
3.3.x         3.5.x        2.12   ``io.delta:delta-spark_2.12`` (or ``_2.13``)
4.0.x         4.0.x        2.13   ``io.delta:delta-spark_2.13``
4.1 - 4.3     4.0.x, 4.1.x 2.13   ``io.delta:delta-spark_<spark major.minor>_2.13``
4.4           4.0 - 4.2    2.13   ``io.delta:delta-spark_<spark major.minor>_2.13``
============  ===========  =====  ==============================================

From Delta 4.1 on, one Delta release is built for several Spark minors and the artifact name
carries the Spark version; the suffix-less ``delta-spark_2.13`` is then the build for Delta's
*default* Spark only, which is why it must not be used for Spark 4.0 with Delta >= 4.1.
"""

from __future__ import annotations

import re

from featuremill.core.errors import FeaturemillError

#: The pair every test runs on (also pinned in constraints.txt).
TESTED_SPARK = "4.0.1"
TESTED_DELTA = "4.0.1"

#: (delta major.minor range) -> Spark major.minor versions it is built for.
SUPPORTED_PAIRS: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {
    (3, 3): ((3, 5),),
    (4, 0): ((4, 0),),
    (4, 1): ((4, 0), (4, 1)),
    (4, 2): ((4, 0), (4, 1)),
    (4, 3): ((4, 0), (4, 1)),
    (4, 4): ((4, 0), (4, 1), (4, 2)),
}


class VersionMismatchError(FeaturemillError):
    """Spark and Delta versions that are not built for each other."""


def major_minor(version: str) -> tuple[int, int]:
    """``'4.0.1'`` -> ``(4, 0)``; also accepts vendor suffixes such as ``3.5.6-amzn-2``."""
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not match:
        raise ValueError(f"{version!r} is not a version number")
    return int(match.group(1)), int(match.group(2))


def delta_maven_coordinate(spark_version: str, delta_version: str, scala_version: str = "2.13") -> str:
    """The ``--packages`` coordinate of the Delta build for this Spark and Scala.

    Raises :class:`VersionMismatchError` when that Delta release is not built for that Spark
    (mixing them fails at run time with ``NoSuchMethodError``/``IncompatibleClassChangeError``).
    """
    spark = major_minor(spark_version)
    delta = major_minor(delta_version)
    scala = ".".join(str(scala_version).split(".")[:2])
    if delta in SUPPORTED_PAIRS and spark not in SUPPORTED_PAIRS[delta]:
        built_for = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_PAIRS[delta])
        raise VersionMismatchError(
            f"delta-spark {delta_version} is built for Spark {built_for}, not Spark {spark_version}; "
            "install the delta-spark that matches the cluster's Spark (see docs/deployment.md, version matrix)"
        )
    if spark[0] >= 4 and scala != "2.13":
        raise VersionMismatchError(f"Spark {spark_version} is built for Scala 2.13 only, not {scala}")
    if delta >= (4, 1):
        return f"io.delta:delta-spark_{spark[0]}.{spark[1]}_{scala}:{delta_version}"
    return f"io.delta:delta-spark_{scala}:{delta_version}"
