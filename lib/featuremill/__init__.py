"""featuremill: Spark jobs that turn raw event data into model-ready features on Delta Lake."""

__version__ = "0.1.0"
