"""Celery app and the transcode pipeline: plan (pure) -> argv (pure) -> run -> publish."""
