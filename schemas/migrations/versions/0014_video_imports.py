"""video imports: videos whose source a worker fetches from a URL

Revision ID: 0014
Revises: 0013

One row per imported video, leased and heartbeaten by the worker that downloads it (core.imports), like a
transcode job; videos gain the status `importing` (a plain VARCHAR: no enum to alter).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "video_imports",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("video_id", sa.Uuid(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease", sa.Uuid(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("transient_failures", sa.Integer(), nullable=False),
        _ts("not_before"),
        sa.Column("bytes_received", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failure_kind", sa.String(32), nullable=True),
        _ts("queued_at", nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _ts("finished_at"),
    )
    op.create_index("ix_video_imports_video_id", "video_imports", ["video_id"], unique=True)
    op.create_index("ix_video_imports_owner_id", "video_imports", ["owner_id"])
    op.create_index("ix_video_imports_state", "video_imports", ["state"])


def downgrade() -> None:
    op.drop_index("ix_video_imports_state", "video_imports")
    op.drop_index("ix_video_imports_owner_id", "video_imports")
    op.drop_index("ix_video_imports_video_id", "video_imports")
    op.drop_table("video_imports")
