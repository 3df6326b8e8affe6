"""battles / annotation_pairs .digest_a, .digest_b: which adapter weights produced each answer (lineage)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('battles', 'annotation_pairs')


def upgrade() -> None:
    # Nullable: rows stored before this revision (and the bare base, external models) have no weight digest.
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('digest_a', sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column('digest_b', sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('digest_b')
            batch_op.drop_column('digest_a')
