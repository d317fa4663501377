"""Quality: the metrics by name, gates and their evaluation, the escalation ladder, per-slice quality records.

Knows nothing of Prefect or HDF5; the flows, the archive's quality table, verify, audit and the bench all use it.
"""
