"""Off-policy evaluation over a partitioned Parquet dataset (by day and symbol), one task per partition.

``layout`` writes and lists the dataset, ``synthetic`` generates large logs in it, ``event_hash`` puts each
event in a bootstrap bucket by its intent id, ``sufficient`` reduces one partition to sums that add up
exactly, and ``evaluate`` runs the two passes on any :class:`tuner.cluster.TaskRunner` and combines them.
"""
