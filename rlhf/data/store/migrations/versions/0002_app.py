"""app: labeling app settings, work queue and assignments (app_settings, label_items, label_item_authors, assignments)

A branch on 0001 beside the review migration; `upgrade heads` applies both.

Revision ID: 0002_app
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_app'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('label_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('response_ids', sa.JSON(), nullable=False),
    sa.Column('done_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('label_items', schema=None) as batch_op:
        batch_op.create_index('ix_label_items_kind_id', ['kind', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_label_items_prompt_id'), ['prompt_id'], unique=False)

    op.create_table('label_item_authors',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('item_id', 'user_id')
    )
    with op.batch_alter_table('label_item_authors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_item_authors_user_id'), ['user_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('draft', sa.JSON(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.Column('shown_at', sa.DateTime(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('result_type', sa.String(length=16), nullable=True),
    sa.Column('result_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['label_items.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id', 'user_id')
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index('ix_assignments_item_status', ['item_id', 'status'], unique=False)
        batch_op.create_index('ix_assignments_user_status', ['user_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_done_at'), ['done_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_done_at'))
        batch_op.drop_index('ix_assignments_user_status')
        batch_op.drop_index('ix_assignments_item_status')
    op.drop_table('assignments')
    with op.batch_alter_table('label_item_authors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_item_authors_user_id'))
    op.drop_table('label_item_authors')
    with op.batch_alter_table('label_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_items_prompt_id'))
        batch_op.drop_index('ix_label_items_kind_id')
    op.drop_table('label_items')
    op.drop_table('app_settings')
