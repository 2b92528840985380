"""accounts and ownership: users, sessions/API tokens, video owner/visibility/description

Videos that exist before accounts are handed to a placeholder operator account `owner@localhost` with
no usable password (set one with `streamify users password owner@localhost`).

Revision ID: 0002
Revises: 0001
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PLACEHOLDER_EMAIL = "owner@localhost"


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_operator", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_index(batch_op.f("ix_users_email"), ["email"], unique=True)

    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auth_tokens") as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_tokens_token_hash"), ["token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_auth_tokens_user_id"), ["user_id"], unique=False)

    conn = op.get_bind()
    owner_id = None
    if conn.execute(sa.text("SELECT count(*) FROM videos")).scalar():
        owner_id = uuid.uuid4()
        op.bulk_insert(
            users,
            [
                {
                    "id": owner_id,
                    "email": PLACEHOLDER_EMAIL,
                    "display_name": "Owner",
                    "password_hash": "!",  # matches no password
                    "is_operator": True,
                    "created_at": datetime.now(UTC),
                }
            ],
        )

    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("visibility", sa.String(length=16), nullable=False, server_default="public"))
        batch_op.alter_column("source_size", type_=sa.BigInteger(), existing_nullable=False)
    if owner_id is not None:
        videos = sa.table("videos", sa.column("owner_id", sa.Uuid()))
        conn.execute(videos.update().values(owner_id=owner_id))
    with op.batch_alter_table("videos") as batch_op:
        batch_op.alter_column("owner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("description", server_default=None, existing_type=sa.Text(), existing_nullable=False)
        batch_op.alter_column(
            "visibility", server_default=None, existing_type=sa.String(length=16), existing_nullable=False
        )
        batch_op.create_index(batch_op.f("ix_videos_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_videos_visibility"), ["visibility"], unique=False)
        batch_op.create_foreign_key("fk_videos_owner_id_users", "users", ["owner_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_constraint("fk_videos_owner_id_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_videos_visibility"))
        batch_op.drop_index(batch_op.f("ix_videos_owner_id"))
        batch_op.drop_column("visibility")
        batch_op.drop_column("description")
        batch_op.drop_column("owner_id")
        batch_op.alter_column("source_size", type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("auth_tokens") as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_tokens_token_hash"))
    op.drop_table("auth_tokens")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email"))
    op.drop_table("users")
