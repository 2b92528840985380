"""downloads: the owner's MP4 and M4A of a video

Revision ID: 0013
Revises: 0012

A video records whether its owner turned downloads on and which rung the MP4 is of; each file (the MP4 of a
rung, the M4A of the audio) is a row of `downloads`, made by a download part after the video is ready.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("downloads_enabled", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("download_rendition", sa.String(32), nullable=True))
    op.create_table(
        "downloads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("video_id", sa.Uuid(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rendition", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("blob_key", sa.String(255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("video_id", "kind"),
    )
    op.create_index("ix_downloads_video_id", "downloads", ["video_id"])


def downgrade() -> None:
    op.drop_index("ix_downloads_video_id", "downloads")
    op.drop_table("downloads")
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("download_rendition")
        batch_op.drop_column("downloads_enabled")
