"""failure kind: why a job failed, as a column instead of a pattern over its error message

Revision ID: 0005
Revises: 0004

Failed jobs from before this revision are classified once, here, as /metrics classified them until now: the
first pattern matching the error names the kind, "other" when none does. The patterns stay in this file only
(history must not move when the application changes); from now on the code that fails a job sets the kind.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (kind, LIKE pattern over the lower-cased error), first match wins: the regular expressions /metrics used,
# case-insensitive, "^x" being "x%" and "a|b" two patterns.
_OLD_PATTERNS = (
    ("ffmpeg", "ffmpeg exited%"),
    ("incomplete_output", "encoded output is incomplete%"),
    ("invalid_master", "master playlist invalid%"),
    ("thumbnails", "thumbnails failed%"),
    ("worker_lost", "worker lost%"),
    ("internal", "internal error%"),
    ("corrupt_source", "%truncated%"),
    ("corrupt_source", "%corrupt%"),
    ("no_decodable_stream", "%no decodable%"),
    ("refused_format", "%container format%"),
)


def upgrade() -> None:
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.add_column(sa.Column("failure_kind", sa.String(length=32), nullable=True))
    jobs = sa.table("transcode_jobs", sa.column("state"), sa.column("error"), sa.column("failure_kind"))
    error = sa.func.lower(jobs.c.error)
    kind = sa.case(*((error.like(pattern), kind) for kind, pattern in _OLD_PATTERNS), else_="other")
    op.execute(jobs.update().where(jobs.c.state == "failed").values(failure_kind=kind))


def downgrade() -> None:
    with op.batch_alter_table("transcode_jobs") as batch_op:
        batch_op.drop_column("failure_kind")
