"""review sessions: an A/B session can be closed (its report reveals the models to experts only then)

Revision ID: 0005_review_sessions
Revises: 0004_team_store
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_review_sessions'
down_revision = '0004_team_store'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('ab_sessions', sa.Column('closed_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ab_sessions') as batch:
        batch.drop_column('closed_at')
