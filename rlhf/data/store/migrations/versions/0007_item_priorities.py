"""item priorities: how unsure the latest reward model is about each rank item (the uncertainty queue)

Revision ID: 0007_item_priorities
Revises: 0006_gold_items
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_item_priorities'
down_revision = '0006_gold_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('item_priorities',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('model_ref', sa.String(length=256), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ),
    sa.PrimaryKeyConstraint('item_id')
    )
    with op.batch_alter_table('item_priorities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_priorities_priority'), ['priority'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('item_priorities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_priorities_priority'))
    op.drop_table('item_priorities')
