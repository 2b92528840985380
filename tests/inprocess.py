"""Streamify apps in the test process: `create_app(settings)` on a fresh SQLite file and blob folder each.

HTTP behaviour that needs no other process (refusals, ownership, settings) is tested through FastAPI's
TestClient against these; nginx, workers, SIGKILL and the browser keep their real-process tests.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.app import create_app
from core.accounts import create_user, mint_token
from core.db import migrate
from core.settings import Settings
from schemas.tables import TokenKind


@dataclass
class LocalApp:
    """One install: its settings, its app, and a client per creator."""

    settings: Settings
    app: FastAPI
    client: TestClient

    def user(self, *, operator: bool = False) -> str:
        """A new account in this install's database; returns its API token."""
        with Session(self.app.state.engine) as session:
            email = f"u-{secrets.token_hex(4)}@example.test"
            user = create_user(session, email, "correct horse battery", is_operator=operator)
            token, _ = mint_token(session, user, TokenKind.api, name="tests")
        return token

    def as_user(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@contextmanager
def local_app(data_dir: Path, **overrides: object) -> Iterator[LocalApp]:
    """An install on embedded defaults under `data_dir` (SQLite, local blobs, filesystem broker)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]  # overrides are Settings fields
    migrate(settings)
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver") as client:
        yield LocalApp(settings, app, client)
