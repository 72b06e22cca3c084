"""Management commands of the realtime core: runworker and serve."""
