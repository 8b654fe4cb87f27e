"""Alembic environment: runs on the connection handed over by rlhf.data.store.db.upgrade."""

from alembic import context
from sqlalchemy import create_engine

from rlhf.data.store.models import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:  # run from the alembic CLI
    connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
