"""The Celery app, configured from settings: Redis in the real stack, kombu's filesystem broker embedded."""

import logging
import uuid

from celery import Celery, signals

from core.logs import configure_logging
from core.settings import Settings, get_settings

TRANSCODE_TASK = "streamify.transcode"


def make_celery(settings: Settings) -> Celery:
    app = Celery("streamify", broker=settings.effective_broker_url, include=["workers.tasks"])
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


app = make_celery(get_settings())


def _json_worker(instance=None, **_kw) -> None:
    """celeryd_init, before anything is printed: JSON from the first line on, and no text banner."""
    configure_logging("json")
    if instance is not None:
        instance.quiet = True


def _json_logging(loglevel: int | str | None = None, **_kw) -> None:
    """Celery's setup_logging hook: with a receiver connected, Celery leaves logging to us."""
    configure_logging("json", loglevel or logging.INFO)


if get_settings().log_format == "json":
    signals.celeryd_init.connect(_json_worker)
    signals.setup_logging.connect(_json_logging)


def ring(reason: str) -> None:
    """Wake one worker; it takes the best queued job (workers.queue), whichever rang."""
    app.send_task(TRANSCODE_TASK, args=[reason], queue=get_settings().queue)


def enqueue_transcode(job_id: uuid.UUID) -> None:
    ring(str(job_id))


_supervisor = None


@signals.worker_ready.connect
def _start_supervisor(sender=None, **_kw) -> None:
    global _supervisor
    from workers.supervision import Supervisor

    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None)
    _supervisor = Supervisor(get_settings(), ring, concurrency)
    _supervisor.start()


@signals.worker_shutdown.connect
def _stop_supervisor(**_kw) -> None:
    if _supervisor is not None:
        _supervisor.stop()
