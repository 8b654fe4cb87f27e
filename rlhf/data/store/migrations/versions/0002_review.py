"""review: blind A/B sessions of two model versions (ab_sessions, ab_items, ab_judgements)

A branch on 0001 beside the app's own migration; `upgrade heads` applies both.

Revision ID: 0002_review
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_review'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ab_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('model_a', sa.String(length=256), nullable=False),
    sa.Column('model_b', sa.String(length=256), nullable=False),
    sa.Column('prompts_ref', sa.String(length=128), nullable=False),
    sa.Column('generation', sa.JSON(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ab_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('response_a_id', sa.Integer(), nullable=False),
    sa.Column('response_b_id', sa.Integer(), nullable=False),
    sa.Column('a_on_left', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ),
    sa.ForeignKeyConstraint(['response_a_id'], ['responses.id'], ),
    sa.ForeignKeyConstraint(['response_b_id'], ['responses.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['ab_sessions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_id', 'prompt_id')
    )
    with op.batch_alter_table('ab_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ab_items_session_id'), ['session_id'], unique=False)

    op.create_table('ab_judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('judge_id', sa.Integer(), nullable=True),
    sa.Column('judge_name', sa.String(length=128), nullable=False),
    sa.Column('choice', sa.String(length=8), nullable=False),
    sa.Column('winner', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['ab_items.id'], ),
    sa.ForeignKeyConstraint(['judge_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ab_judgements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ab_judgements_item_id'), ['item_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ab_judgements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ab_judgements_item_id'))
    op.drop_table('ab_judgements')
    with op.batch_alter_table('ab_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ab_items_session_id'))
    op.drop_table('ab_items')
    op.drop_table('ab_sessions')
