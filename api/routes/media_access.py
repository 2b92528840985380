"""The one question nginx asks an API node about media: may this video's files go out?

nginx calls it as an `auth_request` for every /media/ request whose signature it could not refuse by itself,
and caches the answer per video (and generation) for STREAMIFY_NGINX_ACCESS_CACHE_SECONDS, so a node sees it
about once per video per period, never per segment (requests that arrive while nginx refreshes an expired answer
ask too: its cache lock covers new entries only):

- unsigned URL: is the video public or unlisted?
- valid signature (`?generation=` given, the one the signature covers): is that still the video's playback
  generation, i.e. did the owner not revoke the link it came from?

nginx never uses a cached answer past its period when the nodes fail (no stale decisions): access fails closed.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import may_serve_signed, may_serve_unsigned
from api.deps import SessionDep
from schemas.tables import Video

# Not under /api: nginx refuses /internal/ from outside and reaches it only through its auth subrequest.
router = APIRouter(prefix="/internal", include_in_schema=False)


@router.get("/media-access/{video_id}")
def media_access(
    video_id: uuid.UUID,
    session: SessionDep,
    generation: Annotated[int | None, Query(ge=0, le=999_999_999)] = None,
) -> Response:
    """204: allowed. 401 (auth_request's "denied"): private, revoked, or no such video (the same answer)."""
    video = session.get(Video, video_id)
    allowed = may_serve_unsigned(video) if generation is None else may_serve_signed(video, generation)
    return Response(status_code=204 if allowed else 401, headers={"Cache-Control": "no-store"})
