"""The worker's Celery app: the doorbell task and the supervisor, for `celery -A workers.celery_app`.

Celery looks up the module's `app` attribute; it is built on that first lookup (PEP 562 `__getattr__`) from the
worker's environment settings, so importing this module has no side effect. `worker_app(settings)` builds one
for any other settings object.
"""

import logging
from functools import partial

from celery import Celery, signals

from core.broker import TRANSCODE_TASK, Broker, make_celery
from core.logs import configure_logging
from core.settings import Settings, get_settings


def _json_worker(instance=None, **_kw) -> None:
    """celeryd_init, before anything is printed: JSON from the first line on, and no text banner."""
    configure_logging("json")
    if instance is not None:
        instance.quiet = True


def _json_logging(loglevel: int | str | None = None, **_kw) -> None:
    """Celery's setup_logging hook: with a receiver connected, Celery leaves logging to us."""
    configure_logging("json", loglevel or logging.INFO)


def worker_app(settings: Settings) -> Celery:
    """A Celery app whose doorbell task runs jobs with `settings`, and whose worker supervises with them."""
    from core.webhook_outbox import WEBHOOK_TASK, ring
    from workers.job import run_until_idle
    from workers.supervision import Supervisor
    from workers.webhook_delivery import BATCH, DRAIN_LIMIT, deliver_due

    app = make_celery(settings)
    broker = Broker(settings, app)
    supervisors: list[Supervisor] = []

    @app.task(name=TRANSCODE_TASK)
    def transcode_video(reason: str) -> str:
        """A doorbell: `reason` (the job id that rang, for logs and Flower) need not be the job that runs. The
        worker then takes jobs until the queue is empty, so it never waits on a doorbell that was lost."""
        # Between parts, at most one batch of webhooks (what the part emitted), so encoding never waits long.
        between = partial(deliver_webhooks_now, BATCH)
        outcomes = run_until_idle(settings, ring=broker.enqueue_reason, between=between)
        return ", ".join(outcomes) or "idle"

    def deliver_webhooks_now(limit: int = DRAIN_LIMIT) -> int:
        drained = deliver_due(settings, limit)
        if drained.retry_in is not None:
            ring(broker, "retry", countdown=drained.retry_in)
        if drained.more:
            ring(broker, "more due")
        return drained.attempted

    @app.task(name=WEBHOOK_TASK)
    def deliver_webhooks(reason: str) -> str:
        """A webhook doorbell: attempts every due delivery (the database holds them), whichever rang."""
        return f"{deliver_webhooks_now()} attempted"

    def start_supervisor(sender=None, **_kw) -> None:
        concurrency = getattr(getattr(sender, "controller", None), "concurrency", None)
        supervisor = Supervisor(settings, broker.ring, concurrency, ring_webhooks=lambda why: ring(broker, why))
        supervisors.append(supervisor)
        supervisor.start()

    def stop_supervisor(**_kw) -> None:
        for supervisor in supervisors:
            supervisor.stop()

    # weak=False: the receivers are closures that only the signal keeps alive.
    signals.worker_ready.connect(start_supervisor, weak=False)
    signals.worker_shutdown.connect(stop_supervisor, weak=False)
    if settings.log_format == "json":
        signals.celeryd_init.connect(_json_worker, weak=False)
        signals.setup_logging.connect(_json_logging, weak=False)
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = worker_app(get_settings())
    return _app
