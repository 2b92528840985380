"""A webhook receiver on 127.0.0.1 for the tests: records every request it gets and answers from a script
(a status, a redirect, or holding the request open), then 200 once the script is spent."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    def verified(self, secret: str) -> dict:
        """The payload, if its signature verifies with `secret` (standardwebhooks raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Answer:
    status: int = 200
    location: str | None = None  # a redirect's target
    hold_seconds: float = 0.0  # keep the request open this long (or until `release`) before answering


@dataclass
class Receiver:
    script: list[Answer] = field(default_factory=list)  # answers to the next requests, whatever their path
    scripts: dict[str, list[Answer]] = field(default_factory=dict)  # answers to the next requests to one path
    received: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # statuses actually written, in order
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    queue = receiver.scripts.get(self.path) or receiver.script
                    answer = queue.pop(0) if queue else Answer()
                if answer.hold_seconds:
                    receiver.holding.set()
                    receiver.release.wait(answer.hold_seconds)
                try:
                    self.send_response(answer.status)
                    if answer.location:
                        self.send_header("Location", answer.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    receiver.answered.append(answer.status)
                except OSError:  # the sender is gone (killed mid-request)
                    pass

            do_GET = do_POST  # noqa: N815 (a 302/303 redirect turns the POST into a GET)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.event.get("type") == event_type]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
