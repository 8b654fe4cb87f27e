"""gold items: reference rankings and demonstrations that experts mark, mixed into annotators' queues

Revision ID: 0006_gold_items
Revises: 0005_review_sessions
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_gold_items'
down_revision = '0005_review_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gold_items',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('order', sa.JSON(), nullable=True),
    sa.Column('demonstration_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ),
    sa.ForeignKeyConstraint(['demonstration_id'], ['demonstrations.id'], ),
    sa.PrimaryKeyConstraint('item_id')
    )


def downgrade() -> None:
    op.drop_table('gold_items')
