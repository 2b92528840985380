"""playlists in the database: playback never waits on the blob store

Revision ID: 0009
Revises: 0008

Videos published before this revision have NULL texts and are read from the store as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("master_playlist", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("storyboard_track", sa.Text(), nullable=True))
    with op.batch_alter_table("renditions") as batch_op:
        batch_op.add_column(sa.Column("playlist", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("renditions") as batch_op:
        batch_op.drop_column("playlist")
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("storyboard_track")
        batch_op.drop_column("master_playlist")
