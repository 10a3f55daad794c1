"""Where and how jobs run: devices, GPU slots, the cost and memory of a job, cluster partitions,
job limits, and the source files behind each command (``code_sources``)."""
