"""Local-disk media served as static files (embedded mode). nginx takes this path over at scale.

The same rule as nginx's /media/ (infra/nginx/nginx.conf.j2): a signed URL (`?e=&st=[&g=]`, a private video's
playlists carry them) is checked against the video id in its path and the video's playback generation (links
its owner revoked stop working); an unsigned one is served only for a public
or unlisted video. Anything else is 403 with the reason.
"""

import time
import uuid
from urllib.parse import parse_qs

from anyio import to_thread
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.access import may_serve_unsigned
from core.blobs import cache_control_for, content_type_for
from core.playback_tokens import EXPIRES_PARAM, GENERATION_PARAM, SIGNATURE_PARAM, Revoked, TokenRefused, verify_segment
from schemas.tables import Video

DOWNLOAD_PARAM = "download"  # as nginx's map of $arg_download (infra/nginx/nginx.conf.j2)
PRIVATE_MESSAGE = "this video is private: its media needs a signed link (open it from a playback link)"


class MediaFiles(StaticFiles):
    """StaticFiles gives Range, ETag and Last-Modified; this adds the access check and the store's headers."""

    def __init__(self, *, directory, engine: Engine, segment_key: str) -> None:
        super().__init__(directory=directory)
        self.engine = engine
        self.segment_key = segment_key

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = cache_control_for(str(full_path))
        response.headers["Content-Type"] = content_type_for(str(full_path))
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def _refusal(
        self, video_id: uuid.UUID, signature: str | None, expires: str | None, generation: str | None
    ) -> str | None:
        with Session(self.engine) as session:
            video = session.get(Video, video_id)
        if signature is not None:
            current = video.playback_generation if video is not None else 0
            try:
                verify_segment(
                    self.segment_key, video_id, signature, expires or "", time.time(), generation or "", current
                )
            except Revoked as exc:  # a revoked link of a video no longer private: its plain URLs are open anyway
                return None if may_serve_unsigned(video) else str(exc)
            except TokenRefused as exc:
                return str(exc)
            return None
        return None if may_serve_unsigned(video) else PRIVATE_MESSAGE

    async def get_response(self, path: str, scope: Scope) -> Response:
        head = path.replace("\\", "/").split("/", 1)[0]
        try:
            video_id = uuid.UUID(head)
        except ValueError:
            return JSONResponse({"detail": "not found"}, status_code=404)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        signature = query.get(SIGNATURE_PARAM, [None])[-1] or None
        expires = query.get(EXPIRES_PARAM, [None])[-1]
        generation = query.get(GENERATION_PARAM, [None])[-1]
        refusal = await to_thread.run_sync(self._refusal, video_id, signature, expires, generation)
        if refusal is not None:
            return JSONResponse({"detail": refusal}, status_code=403, headers={"Cache-Control": "no-store"})
        response = await super().get_response(path, scope)
        if query.get(DOWNLOAD_PARAM, [""])[-1]:  # a download link saves a file; without it the file plays inline
            response.headers["Content-Disposition"] = "attachment"
        cache = response.headers.get("Cache-Control", "")
        if signature is not None and cache.startswith("public"):
            response.headers["Cache-Control"] = "private" + cache.removeprefix("public")  # never a shared cache
        return response
