"""The operator dashboard page: a shell that follows GET /api/v1/ops/events (SSE) and acts through the ops API.

The page itself is refused to anyone but an operator (401 signed out, 403 signed in without the role), so a
visitor never even gets the shell; the API behind it refuses them too.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import MaybeUserDep
from player.pages import templates

router = APIRouter(include_in_schema=False)


@router.get("/ops", response_class=HTMLResponse)
def dashboard(request: Request, user: MaybeUserDep) -> HTMLResponse:
    if user is None:
        refusal = {"refused": "signin", "message": "Sign in with an operator account to see the job queue."}
        return templates.TemplateResponse(request, "ops.html", refusal, status_code=401)
    if not user.is_operator:
        refusal = {
            "refused": "role",
            "message": "Operators only: this account cannot see or steer the job queue. "
            "An operator can grant the role with `streamify users operator EMAIL`.",
        }
        return templates.TemplateResponse(request, "ops.html", refusal, status_code=403)
    return templates.TemplateResponse(request, "ops.html", {"refused": None})
