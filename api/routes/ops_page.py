"""The operator dashboard page: a shell that follows GET /api/v1/ops/events (SSE) and acts through the ops API.

The page itself is refused to anyone but an operator (401 signed out, 403 signed in without the role), so a
visitor never even gets the shell; the API behind it refuses them too.
"""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import MaybeUserDep
from player.pages import templates
from schemas.tables import User

router = APIRouter(include_in_schema=False)


def _page(request: Request, user: User | None, template: str, context: dict[str, object]) -> HTMLResponse:
    """An operator page, or its refusal (the same words on every operator page)."""
    if user is None:
        refusal = {"refused": "signin", "message": "Sign in with an operator account to see the job queue."}
        return templates.TemplateResponse(request, template, {**context, **refusal}, status_code=401)
    if not user.is_operator:
        refusal = {
            "refused": "role",
            "message": "Operators only: this account cannot see or steer the job queue. "
            "An operator can grant the role with `streamify users operator EMAIL`.",
        }
        return templates.TemplateResponse(request, template, {**context, **refusal}, status_code=403)
    return templates.TemplateResponse(request, template, {**context, "refused": None})


@router.get("/ops", response_class=HTMLResponse)
def dashboard(request: Request, user: MaybeUserDep) -> HTMLResponse:
    return _page(request, user, "ops.html", {})


@router.get("/ops/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: uuid.UUID, user: MaybeUserDep) -> HTMLResponse:
    """One job: its ladder (each rung's VMAF and why it was chosen or dropped), loudness and notes; the page reads
    GET /api/v1/ops/jobs/{id}."""
    return _page(request, user, "ops_job.html", {"job_id": str(job_id)})
