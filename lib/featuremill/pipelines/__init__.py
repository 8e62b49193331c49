"""Job-level orchestration: read at the edges, call the transforms, write, record the run."""
