"""The cached views' bodies are compressed with LZ4 rather than pglz.

`finding_cache.body` holds each view's JSON: 430 KB for the counting view and 230 KB for
the statement at 100,000 checklists on the bench machine. PostgreSQL compresses a value
that large before it stores it, with pglz by default, and decompresses it on each read.
The cache is written on every compute and read on every poll it answers and for each
section of a statement. Writing the counting view's body took 7.4 ms with pglz against
2.2 ms with LZ4, and reading it 1.25 against 0.66 ms (`bench/README.md`). LZ4 needs
PostgreSQL 14 built with it, as the PostgreSQL project's and Debian's packages are;
elsewhere the column keeps pglz. Rows are compressed anew as they are written again,
which the cache does all the time. (PostgreSQL only; SQLite compresses nothing.)

Revision ID: 0032
Revises: 0031
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or conn.dialect.server_version_info < (14,):
        return
    try:
        with conn.begin_nested():  # a server built without LZ4 refuses it: pglz stays
            op.execute("ALTER TABLE finding_cache ALTER COLUMN body SET COMPRESSION lz4")
    except DBAPIError:
        pass


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or conn.dialect.server_version_info < (14,):
        return
    op.execute("ALTER TABLE finding_cache ALTER COLUMN body SET COMPRESSION default")
