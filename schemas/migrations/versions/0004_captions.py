"""captions: one WebVTT file per video and language

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "captions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("video_id", "language"),
    )
    with op.batch_alter_table("captions") as batch_op:
        batch_op.create_index(batch_op.f("ix_captions_video_id"), ["video_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("captions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_captions_video_id"))
    op.drop_table("captions")
