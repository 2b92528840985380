"""The transcode worker: the Celery app and its doorbell task, the pipeline plan (pure) -> argv (pure) -> run ->
publish, thumbnails, and the supervisor that re-queues jobs of lost workers."""
