"""benchmark_runs.n: items scored per metric

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows ingested before this revision (and lm-eval files, which carry no counts) have none.
    with op.batch_alter_table('benchmark_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('benchmark_runs', schema=None) as batch_op:
        batch_op.drop_column('n')
