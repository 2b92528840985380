"""job parts: chunked encoding across workers and progressive publish

Revision ID: 0010
Revises: 0009

A job is planned into parts (time ranges, the audio, the storyboard) that any worker takes; videos say how
much of them plays while the rest encodes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_parts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("transcode_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("generation", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=True),
        sa.Column("first_segment", sa.Integer(), nullable=False),
        sa.Column("segment_seconds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease", sa.Uuid(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("transient_failures", sa.Integer(), nullable=False),
        _ts("not_before"),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=True),
        sa.Column("codecs", sa.JSON(), nullable=True),
        sa.Column("init_digests", sa.JSON(), nullable=True),
        sa.Column("encode_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failure_kind", sa.String(32), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        _ts("queued_at", nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _ts("finished_at"),
        sa.UniqueConstraint("job_id", "kind", "index"),
    )
    op.create_index("ix_job_parts_job_id", "job_parts", ["job_id"])
    op.create_index("ix_job_parts_state", "job_parts", ["state"])
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.add_column(_ts("planned_at"))
        batch_op.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("plan_digest", sa.String(64), nullable=True))
        batch_op.add_column(_ts("first_playable_at"))
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("playable_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("playable_seconds")
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.drop_column("first_playable_at")
        batch_op.drop_column("plan_digest")
        batch_op.drop_column("plan")
        batch_op.drop_column("planned_at")
    op.drop_index("ix_job_parts_state", "job_parts")
    op.drop_index("ix_job_parts_job_id", "job_parts")
    op.drop_table("job_parts")
