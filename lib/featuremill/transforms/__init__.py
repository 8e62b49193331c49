"""Pure DataFrame -> DataFrame transforms: raw-record parsing, window features and the point-in-time join. No reads or writes here."""
