"""Pure DataFrame -> DataFrame transforms: raw-record parsing, window features, the point-in-time
join and as-of dimension history. No reads or writes here."""
