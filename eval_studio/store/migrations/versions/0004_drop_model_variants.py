"""drop model_variants: written at every start, read by nothing (the catalog comes from the generation service)

It also held local adapter paths, which a database backed up to the Hub (eval_studio/space.py) should not carry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table('model_variants')


def downgrade() -> None:
    op.create_table('model_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('base_model', sa.String(length=200), nullable=True),
    sa.Column('adapter_path', sa.Text(), nullable=True),
    sa.Column('endpoint', sa.Text(), nullable=True),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('adapter', 'base', 'external')", name=op.f('ck_model_variants_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_variants')),
    sa.UniqueConstraint('name', name=op.f('uq_model_variants_name'))
    )
