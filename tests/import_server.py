"""A small threaded HTTP server on 127.0.0.1 that imports fetch from: real files, and the misbehaving answers an
import must survive (too slow, too big with or without a declared length, redirects, a playlist, errors)."""

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# Names local files, as a hostile "video" would: an import must never hand it to ffmpeg's hls demuxer.
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
SLOW_CHUNK = 256  # bytes every SLOW_PAUSE seconds: about 1 KB/s
SLOW_PAUSE = 0.25
TRICKLE_FOR = 60.0  # a slow or huge answer gives up by itself after this long (the client is gone by then)


@dataclass
class FileServer:
    base: str  # http://127.0.0.1:<port>
    files: dict[str, Path]  # served at /files/<name>
    huge_bytes: int  # what /huge and /huge-declared send (or declare)
    requests: list[str]  # paths asked for, in order

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            split = urlsplit(self.path)
            server.requests.append(split.path)
            # The importer hanging up on us is the point of most of these answers.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(split.path, parse_qs(split.query))

        def _answer(self, path: str, query: dict[str, list[str]]) -> None:
            name = path.removeprefix("/files/")
            if path.startswith("/files/") and name in server.files:
                return self._send(200, server.files[name].read_bytes(), "application/octet-stream")
            if path == "/playlist.m3u8":
                return self._send(200, PLAYLIST, "application/vnd.apple.mpegurl")
            if path == "/page.html":
                return self._send(200, b"<!doctype html><title>not a video</title>" + b" " * 4096, "text/html")
            if path == "/redirect":
                self.send_response(302)
                self.send_header("Location", query["to"][0])
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if path == "/slow":
                return self._trickle(declared=1024 * 1024, chunk=SLOW_CHUNK, pause=SLOW_PAUSE)
            if path == "/stall":  # a little, then nothing at all
                return self._trickle(declared=1024 * 1024, chunk=100, pause=TRICKLE_FOR, limit=1024 * 1024)
            if path == "/huge":  # no length: the importer finds out while receiving
                return self._trickle(declared=None, chunk=64 * 1024, pause=0.0, limit=server.huge_bytes)
            if path == "/huge-declared":
                return self._trickle(declared=server.huge_bytes, chunk=64 * 1024, pause=0.0, limit=server.huge_bytes)
            return self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _trickle(self, *, declared: int | None, chunk: int, pause: float, limit: int | None = None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            if declared is not None:
                self.send_header("Content-Length", str(declared))
            self.end_headers()
            sent, until = 0, time.monotonic() + TRICKLE_FOR
            total = limit if limit is not None else declared or 0
            while sent < total and time.monotonic() < until:
                self.wfile.write(b"\0" * min(chunk, total - sent))
                self.wfile.flush()
                sent += chunk
                if pause:
                    time.sleep(pause)

    return Handler


@contextmanager
def file_server(files: dict[str, Path], huge_bytes: int) -> Iterator[FileServer]:
    served = FileServer(base="", files=files, huge_bytes=huge_bytes, requests=[])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    httpd.daemon_threads = True
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="import-file-server", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
