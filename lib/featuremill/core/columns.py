"""Names of the internal columns the raw-file readers add and the ingest transform consumes."""

#: Spark's column for a record that did not parse (kept as the raw text for the quarantine).
CORRUPT_RECORD = "_corrupt_record"
#: The file each raw row came from, for the quarantine and error messages.
SOURCE_FILE = "_source_file"
