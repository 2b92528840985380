"""Celery task entry points: thin wrappers over workers.job."""

from core.settings import get_settings
from workers.celery_app import TRANSCODE_TASK, app
from workers.job import run_next


@app.task(name=TRANSCODE_TASK)
def transcode_video(reason: str) -> str:
    """A doorbell: `reason` (the job id that rang, for logs and Flower) need not be the job that runs."""
    return run_next(get_settings())
