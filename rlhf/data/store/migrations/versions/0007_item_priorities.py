"""item priorities: how unsure the latest reward model is about each rank item (the uncertainty queue)

Revision ID: 0007_item_priorities
Revises: 0006_gold_items
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0007_item_priorities'
down_revision = '0006_gold_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
