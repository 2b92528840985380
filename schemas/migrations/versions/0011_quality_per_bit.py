"""quality per bit: measured VMAF per rendition, loudness and notes on the job

Revision ID: 0011
Revises: 0010

Each rendition records the VMAF measured against the source (and over how many seconds); a job records the
source's measured loudness and the gain applied, and notes on what it could not measure (a failed trial encode
or VMAF run leaves the video published with the fixed ladder, never failed).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("renditions") as batch_op:
        batch_op.add_column(sa.Column("vmaf", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("vmaf_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.add_column(sa.Column("loudness", sa.JSON(), nullable=True))
    op.create_table(
        "job_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("transcode_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_job_notes_job_id", "job_notes", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_job_notes_job_id", "job_notes")
    op.drop_table("job_notes")
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.drop_column("loudness")
    with op.batch_alter_table("renditions") as batch_op:
        batch_op.drop_column("vmaf_seconds")
        batch_op.drop_column("vmaf")
