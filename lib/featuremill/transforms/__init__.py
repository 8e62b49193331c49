"""Pure DataFrame -> DataFrame transforms: raw-record parsing, window features, the point-in-time
join and the content fingerprint. No reads or writes here."""
