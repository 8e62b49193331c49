"""Tables and their history: reads and writes, the Delta log, exactly-once commits, versions,
manifests, the run ledger, retention, the catalog and the model registry."""
