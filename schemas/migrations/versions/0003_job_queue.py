"""job queue: fair scheduling, priorities, cancellation, heartbeats, worker registry

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("fps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("encoded_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE transcode_jobs SET queued_at = created_at,"
        " owner_id = (SELECT owner_id FROM videos WHERE videos.id = transcode_jobs.video_id)"
    )
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.alter_column("owner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("queued_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("priority", server_default=None, existing_type=sa.Integer(), existing_nullable=False)
        batch_op.alter_column(
            "cancel_requested", server_default=None, existing_type=sa.Boolean(), existing_nullable=False
        )
        batch_op.create_index(batch_op.f("ix_transcode_jobs_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transcode_jobs_queued_at"), ["queued_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_transcode_jobs_finished_at"), ["finished_at"], unique=False)
        batch_op.create_foreign_key(
            "fk_transcode_jobs_owner_id_users", "users", ["owner_id"], ["id"], ondelete="CASCADE"
        )
    op.create_table(
        "worker_nodes",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pids", sa.String(length=255), nullable=False),
        sa.Column("load1", sa.Float(), nullable=True),
        sa.Column("cpus", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("worker_nodes") as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_nodes_last_seen"), ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker_nodes") as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_nodes_last_seen"))
    op.drop_table("worker_nodes")
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.drop_constraint("fk_transcode_jobs_owner_id_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_transcode_jobs_finished_at"))
        batch_op.drop_index(batch_op.f("ix_transcode_jobs_queued_at"))
        batch_op.drop_index(batch_op.f("ix_transcode_jobs_owner_id"))
        for column in ("heartbeat_at", "queued_at", "encoded_seconds", "fps", "cancel_requested", "priority"):
            batch_op.drop_column(column)
        batch_op.drop_column("owner_id")
