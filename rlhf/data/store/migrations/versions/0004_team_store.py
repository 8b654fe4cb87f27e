"""team store: what a shared server needs (accounts that can be disabled, sessions that can be ended, model
versions with a content hash, a queue item key as long as the model reference in it)

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
    # a model version's files are hashed at registration and re-checked on load; older rows keep NULL ("no hash recorded")
    op.add_column('model_versions', sa.Column('content_hash', sa.String(length=64), nullable=True))
    op.add_column('model_versions', sa.Column('file_hashes', sa.JSON(), nullable=True))
    # rank:<prompt id>:<model reference of up to 256 characters> no longer fits VARCHAR(256). SQLite does not
    # enforce sizes (and a batch copy of the table would trip the foreign keys into it): PostgreSQL only
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('label_items', 'key', type_=sa.Text(), existing_type=sa.String(length=256), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('label_items', 'key', type_=sa.String(length=256), existing_type=sa.Text(), existing_nullable=False)
    with op.batch_alter_table('model_versions') as batch:
        batch.drop_column('file_hashes')
        batch.drop_column('content_hash')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
        batch.drop_column('disabled')
