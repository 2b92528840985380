"""playback generation: a video's owner can revoke every playback link handed out so far

Revision ID: 0008
Revises: 0007

Existing videos start at generation 0, which signs exactly what tokens and media signatures signed before this
column existed: links already handed out keep working until the owner revokes them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("playback_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("playback_generation")
