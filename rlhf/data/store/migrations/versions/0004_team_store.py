"""team store: what a shared server needs (accounts that can be disabled, sessions that can be ended)

Revision ID: 0004_team_store
Revises: 0003_jobs
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_team_store'
down_revision = '0003_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch table copy would trip the foreign keys that point at users
    op.add_column('users', sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('users', sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
        batch.drop_column('disabled')
