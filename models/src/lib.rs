//! h2ovl-models: the shapes of the H2OVL family and synthetic checkpoints for tests and benchmarks.
