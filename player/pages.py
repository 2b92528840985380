"""Page routes. Pages are thin shells: they read the same JSON API a script would."""

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from player.redirects import safe_next

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
HLS_JS = HERE / "static" / "vendor" / "hls.min.js"
NextPath = Annotated[str | None, Query(alias="next", description="same-site path to open after signing in")]


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """The public index: every creator's public, ready videos (the page reads GET /api/v1/videos)."""
    return templates.TemplateResponse(request, "index.html", {})


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, next_path: NextPath = None) -> HTMLResponse:
    """Sign-in form; `next` is where to go afterwards, kept only if it is a path on this site."""
    return templates.TemplateResponse(request, "login.html", {"next": safe_next(next_path)})


@router.get("/signup", response_class=HTMLResponse)
def signup(request: Request, next_path: NextPath = None) -> HTMLResponse:
    """Sign-up form; a new creator lands on `next`, or on their (empty) library."""
    return templates.TemplateResponse(request, "signup.html", {"next": safe_next(next_path, "/library")})


@router.get("/library", response_class=HTMLResponse)
def library(request: Request) -> HTMLResponse:
    """The creator's own videos (the page reads GET /api/v1/me/videos with the session cookie)."""
    return templates.TemplateResponse(request, "library.html", {})


@router.get("/watch/{video_id}", response_class=HTMLResponse)
def watch(request: Request, video_id: uuid.UUID) -> HTMLResponse:
    return templates.TemplateResponse(request, "watch.html", {"video_id": str(video_id)})


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request) -> HTMLResponse:
    """Resumable (tus) uploads from the browser; the page itself asks /api/v1/auth/me who is signed in."""
    return templates.TemplateResponse(
        request, "upload.html", {"max_bytes": request.app.state.settings.max_upload_bytes}
    )


def mount_player(app: FastAPI) -> None:
    if not HLS_JS.is_file():
        raise RuntimeError(f"{HLS_JS} missing: run `npm ci` (it copies hls.js from node_modules)")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
