"""Online serving through Feast: featuremill computes, Feast serves (docs/serving.md).

* :mod:`featuremill.serving.repo`: a Feast feature repository generated from the pipeline file;
* :mod:`featuremill.serving.online`: the online store's address, reachability and the writer that
  runs on the executors;
* :mod:`featuremill.serving.materialize`: the latest row per entity, incremental by Delta version.
"""
