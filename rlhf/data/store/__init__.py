"""The SQL store: SQLAlchemy models (`models`), engine + sessions + migrations (`db`), imports (`ingest`)."""

from rlhf.data.store.db import open_store, session_scope  # noqa: F401
