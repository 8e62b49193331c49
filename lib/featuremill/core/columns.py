"""Names of featuremill's internal (bookkeeping) columns and the reserved prefix they share.

Every column featuremill adds for its own bookkeeping starts with :data:`RESERVED_PREFIX` (a
single underscore): ``_known_at`` and ``_feature_set_version`` in feature tables,
``_ingest_date`` and ``_source_file`` in validated tables, ``_preprocessing_version`` in
preprocessed tables, ``_corrupt_record`` between the reader and the quarantine, the stream's
``_topic``/``_partition``/``_offset``/``_batch_id``/``_stream_id``. Stored tables keep these
names (renaming them would break existing Delta tables); instead the prefix is reserved:

* configuration refuses user columns, features and labels whose names start with it;
* every user-facing reader (training sets, selection, profiles, drift, the catalog) leaves
  such columns out, through :func:`is_internal` / :func:`user_columns`.

The quarantine table is the one exception: its ``_reason``/``_rule``/``_raw_record`` columns are
its content, read by people on purpose (docs/pipeline-config.md#reserved-column-names).
"""

from __future__ import annotations

from collections.abc import Iterable

#: The prefix of every internal column; user-declared names may not start with it.
RESERVED_PREFIX = "_"
#: Spark's column for a record that did not parse (kept as the raw text for the quarantine).
CORRUPT_RECORD = "_corrupt_record"
#: The file each raw row came from, for the quarantine and error messages.
SOURCE_FILE = "_source_file"


def is_internal(name: str) -> bool:
    """Whether ``name`` is an internal (bookkeeping) column: it starts with :data:`RESERVED_PREFIX`."""
    return str(name).startswith(RESERVED_PREFIX)


def user_columns(columns: Iterable[str]) -> list[str]:
    """``columns`` (a DataFrame's ``.columns`` or any names) without the internal ones, in order."""
    return [c for c in columns if not is_internal(c)]


def reserved_name_message(name: str) -> str:
    """The explanation shared by every refusal of a user-declared name with the reserved prefix."""
    return (
        f"{name!r} starts with {RESERVED_PREFIX!r}, the prefix featuremill reserves for its internal columns "
        "(see docs/pipeline-config.md#reserved-column-names); rename it"
    )
