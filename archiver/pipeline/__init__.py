"""The pipeline: the queue of jobs with leases and politeness, the runner loop (claim -> capture -> seal ->
index -> children), its supervisor and process-tree limits, the watch schedule and liveness checks."""
