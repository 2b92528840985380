"""job leases: each attempt's identity fences its writes; transient failures wait and retry; encodes in folders

Revision ID: 0006
Revises: 0005

A video published before this revision keeps its files at the top of its prefix (media_root stays NULL and
readers fall back to the prefix itself); from now on each attempt writes under its own folder.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.add_column(sa.Column("lease", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("transient_failures", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("media_root", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("media_root")
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.drop_column("transient_failures")
        batch_op.drop_column("not_before")
        batch_op.drop_column("lease")
