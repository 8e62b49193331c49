"""Bottom layer: errors, the session factory, SQL helpers, progress logging, schedules and run metrics."""
