"""The one question nginx asks an API node about media: may this video's files go out without a signature?

nginx calls it as an `auth_request` for unsigned /media/ requests only, and caches the answer per video for
STREAMIFY_NGINX_ACCESS_CACHE_SECONDS, so a node sees it at most once per video per period, never per segment.
Signed requests (a private video's playlists carry them) are checked by nginx alone.
"""

import uuid

from fastapi import APIRouter, Response

from api.access import may_serve_unsigned
from api.deps import SessionDep
from schemas.tables import Video

# Not under /api: nginx refuses /internal/ from outside and reaches it only through its auth subrequest.
router = APIRouter(prefix="/internal", include_in_schema=False)


@router.get("/media-access/{video_id}")
def media_access(video_id: uuid.UUID, session: SessionDep) -> Response:
    """204: public or unlisted. 401 (auth_request's "denied"): private, or no such video (the same answer)."""
    allowed = may_serve_unsigned(session.get(Video, video_id))
    return Response(status_code=204 if allowed else 401, headers={"Cache-Control": "no-store"})
