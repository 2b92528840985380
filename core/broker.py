"""The job queue's doorbell: a Celery app configured from settings, used by whoever rings and by the workers.

The database is the queue's truth (core.jobqueue); a broker message only wakes one worker, which then takes the
best queued job. The API rings by task *name*, so it never imports worker code. Nothing here runs at import:
the Celery app (and the filesystem broker's folders on embedded defaults) is made by the first `Broker.app`.
"""

import logging
import uuid

from celery import Celery

from core.settings import Settings

TRANSCODE_TASK = "streamify.transcode"
log = logging.getLogger(__name__)


def make_celery(settings: Settings) -> Celery:
    """Redis in the real stack, kombu's filesystem transport under data_dir on embedded defaults."""
    app = Celery("streamify", broker=settings.effective_broker_url, set_as_current=False)
    transport_options: dict[str, object] = {}
    if settings.effective_broker_url.startswith("filesystem"):
        folder = settings.broker_dir.resolve()
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # default is ./control in the working directory
            "store_processed": False,
        }
    else:
        # A long encode must not be redelivered to a second worker while the first is still on it.
        transport_options = {"visibility_timeout": 12 * 3600}
    app.conf.update(
        task_default_queue=settings.queue,
        task_acks_late=True,  # a job whose worker dies is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # encodes are long: never hoard queued jobs on a busy worker
        task_ignore_result=True,  # job state lives in the database
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        # Task events for Flower (`streamify flower`): a doorbell's received/started/succeeded, cheap at our rate.
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


class Broker:
    """One install's doorbell, built from the settings it is given (never from the environment)."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        self._app = app

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_celery(self.settings)
        return self._app

    def ring(self, reason: str) -> None:
        """Wake one worker; it takes the best queued job (core.jobqueue), whichever rang."""
        self.app.send_task(TRANSCODE_TASK, args=[reason], queue=self.settings.queue)

    def enqueue(self, job_id: uuid.UUID) -> None:
        """Ring for a job just queued in the database."""
        self.enqueue_reason(str(job_id))

    def enqueue_reason(self, reason: str) -> None:
        """Ring for work just queued in the database (a job, or a planned job's parts). A broker that is down
        loses nothing: the work waits in the queue and every worker's supervisor rings for work left waiting
        (workers.supervision.RING_AFTER), so an upload or a retry is never refused for the broker's sake."""
        try:
            self.ring(reason)
        except Exception:
            log.warning("broker unreachable: no doorbell for %s (it waits in the queue)", reason, exc_info=True)

    def check(self) -> None:
        """Raise if the broker cannot be reached (readiness)."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
