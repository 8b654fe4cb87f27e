"""gold items: reference rankings and demonstrations that experts mark, mixed into annotators' queues

Revision ID: 0006_gold_items
Revises: 0005_review_sessions
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0006_gold_items'
down_revision = '0005_review_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
