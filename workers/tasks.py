"""Celery task entry points: thin wrappers over workers.job."""

import uuid

from core.settings import get_settings
from workers.celery_app import TRANSCODE_TASK, app
from workers.job import run_job


@app.task(name=TRANSCODE_TASK)
def transcode_video(job_id: str) -> str:
    return run_job(uuid.UUID(job_id), get_settings())
