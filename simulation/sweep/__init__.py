"""Sweeps: learner settings x seeds x symbols x data as independent tasks on one core or a Ray cluster.

``grid`` plans the tasks, ``tasks`` runs one (reusing the main job's routing and summaries), ``store``
checkpoints each finished task, ``run`` drives them on a :class:`tuner.cluster.TaskRunner`, ``table`` joins the rows and
``tracking`` logs them to MLflow as nested runs.
"""
