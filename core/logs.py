"""Log lines for people (text) or for a log pipeline (STREAMIFY_LOG_FORMAT=json: one JSON object a line).

Every line logged while a transcode job runs carries `job_id` and `video_id`, so one job's story can be
pulled out of many interleaved workers. The ids live in a context variable set by `job_context`; threads
a library starts on its own during the job (the Azure SDK's parallel transfers) have no context, so they
fall back to the process's running job when there is exactly one (a prefork or solo worker process runs
one job at a time).
"""

import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal
from urllib.parse import unquote_plus

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from core.playback_tokens import SIGNATURE_PARAM, TOKEN_PARAM

LogFormat = Literal["text", "json"]
HANDLER_NAME = "streamify-json"
# uvicorn gives these their own handlers; in JSON mode they go through the root logger's one instead.
ACCESS_LOGGER = "uvicorn.access"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", ACCESS_LOGGER)
# Query parameters whose values open private media: playback tokens and segment signatures (`e` is only
# an expiry time).
SECRET_PARAMS = frozenset({TOKEN_PARAM, SIGNATURE_PARAM})

_OUTSIDE = ("", "")  # marks a thread that never works for a job (the worker's supervisor)
_job: ContextVar[tuple[str, str] | None] = ContextVar("streamify_job", default=None)
_running: dict[int, tuple[str, str]] = {}  # thread id -> (job id, video id) of jobs running in this process
_lock = threading.Lock()


@contextmanager
def job_context(job_id: uuid.UUID | str, video_id: uuid.UUID | str) -> Iterator[None]:
    """Everything logged inside (in this thread, or in threads without a context of their own) names the job."""
    ids = (str(job_id), str(video_id))
    token = _job.set(ids)
    me = threading.get_ident()
    with _lock:
        _running[me] = ids
    try:
        yield
    finally:
        with _lock:
            _running.pop(me, None)
        _job.reset(token)


def outside_jobs() -> None:
    """Call at the start of a thread that never works for a job, so it never borrows a running job's ids."""
    _job.set(_OUTSIDE)


def current_job() -> tuple[str, str] | None:
    """(job id, video id) of the job this line is logged for, if any."""
    ids = _job.get()
    if ids is None:
        with _lock:
            if len(_running) == 1:
                ids = next(iter(_running.values()))
    return None if ids in (None, _OUTSIDE) else ids


class JobContextFilter(logging.Filter):
    """Adds job_id and video_id to records logged during a job (attached to handlers: sees every logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_job()
        if ids is not None:
            record.job_id, record.video_id = ids
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        ["levelname", "name", "message", "process", "threadName"],
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's ANSI-coloured copy of the message
        timestamp=True,  # ISO 8601 in UTC, as "timestamp"
    )


def redact_query(target: str) -> str:
    """`/path?a=1&token=X&st=Y` -> `/path?a=1&token=[redacted]&st=[redacted]`: the values of SECRET_PARAMS.

    Keys are compared decoded (`tok%65n` is `token` to the query parser that reads it)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for pair in query.split("&"):
        key, eq, _value = pair.partition("=")
        pairs.append(f"{key}=[redacted]" if eq and unquote_plus(key) in SECRET_PARAMS else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactPlaybackSecrets(logging.Filter):
    """Access log lines keep the path but not playback tokens or segment signatures: a token opens a private
    video for up to 30 days, so reading the log must not be enough to watch it. uvicorn's access record has
    the request target among its args (text and JSON formatters both render from them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Put the filter on uvicorn's access logger (once), whatever formatter or handler then writes the line."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactPlaybackSecrets) for f in access.filters):
        access.addFilter(RedactPlaybackSecrets())


def configure_logging(log_format: LogFormat, level: int | str = logging.INFO) -> None:
    """JSON: one stderr handler on the root logger for every line (ours, Celery's, uvicorn's, libraries').

    Text: leaves the role's own setup (uvicorn's, Celery's) alone. Either way, access log lines lose playback
    secrets. Safe to call again (a forked pool child)."""
    redact_access_log()
    if log_format != "json":
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(json_formatter())
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)  # warnings become JSON lines too, not bare text on stderr
